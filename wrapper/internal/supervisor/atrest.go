package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"time"
)

// A reload reads a configuration at rest: before the new generation starts,
// the wrapper waits until no configuration file has changed for atRestQuiet,
// at most atRestMax, so that haproxy does not load a file an editor or a
// deployment tool is writing at that moment.
const (
	atRestQuiet = 50 * time.Millisecond
	atRestMax   = time.Second
)

// configPaths are the -f arguments: files or folders.
func configPaths(args []string) []string {
	var out []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-f" {
			out = append(out, args[i+1])
			i++
		}
	}
	return out
}

// newestChange is the latest modification time among the paths, the files
// of folders included.
func newestChange(paths []string) time.Time {
	var newest time.Time
	see := func(fi os.FileInfo) {
		if fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		see(fi)
		if !fi.IsDir() {
			continue
		}
		ents, _ := os.ReadDir(p)
		for _, e := range ents {
			if fi, err := os.Stat(filepath.Join(p, e.Name())); err == nil && fi.Mode().IsRegular() {
				see(fi)
			}
		}
	}
	return newest
}

// waitAtRest waits until the configuration has not changed for atRestQuiet
// (bounded by atRestMax and ctx) and returns how long it waited (0 when it
// did not).
func waitAtRest(ctx context.Context, paths []string, now func() time.Time) time.Duration {
	start := now()
	for i := 0; ; i++ {
		quiet := now().Sub(newestChange(paths))
		if quiet >= atRestQuiet || now().Sub(start) >= atRestMax {
			if i == 0 {
				return 0
			}
			return now().Sub(start)
		}
		t := time.NewTimer(atRestQuiet - quiet)
		select {
		case <-ctx.Done():
			t.Stop()
			return now().Sub(start)
		case <-t.C:
		}
	}
}
