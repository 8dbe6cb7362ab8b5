package commands

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// maxRounds bounds the reloads one command asks for while the
// configuration keeps changing under them.
const maxRounds = 10

// reloadCommand asks the wrapper to reload and waits for the outcome: exit
// 0 when the new generation serves, 1 with haproxy's reason when the reload
// failed (the old generation keeps serving) or no wrapper answers.
//
// The last edit is always applied: when a configuration file changed while
// the reload ran (an edit that landed after haproxy had read the files, e.g.
// during the load of a large configuration), it asks for another reload, up
// to maxRounds; the outcome is the last reload's. This matters most for
// haproxy-reload.path, whose path unit does not watch while the reload it
// started runs. The files are the wrapper's own -f arguments (its
// /proc/PID/cmdline and its CONFIG), only ever stat'ed.
func reloadCommand(w where) int {
	sock, code, ok := w.one("reload", proc.ExitStartFailed)
	if !ok {
		return code
	}
	pid, err := control.Peer(sock)
	if err != nil {
		say("reload: %v", w.explain(err))
		return proc.ExitStartFailed
	}
	return reloadRounds(w, sock, configFiles(pid))
}

// reloadRounds asks for reloads until one ran with files unchanged (at
// most maxRounds) and returns the last one's exit code.
func reloadRounds(w where, sock string, files []string) int {
	for round := 1; ; round++ {
		before := fingerprint(files)
		ans, err := control.Ask(context.Background(), sock, "reload")
		if err != nil {
			say("reload: %v", w.explain(err))
			return proc.ExitStartFailed
		}
		ans = strings.TrimSpace(ans)
		what, ok := strings.CutPrefix(ans, "ok ")
		if ok {
			fmt.Printf("reloaded: %s\n", what)
		} else {
			say("reload failed: %s", strings.TrimPrefix(ans, "error "))
		}
		changed := files != nil && fingerprint(files) != before
		switch {
		case changed && round < maxRounds:
			fmt.Printf("the configuration changed during the reload: reloading again (%d of at most %d)\n", round+1, maxRounds)
			continue
		case changed:
			fmt.Printf("the configuration still changes after %d reloads: stopping here (the next change reloads again)\n", maxRounds)
		}
		if ok {
			return proc.ExitOK
		}
		return proc.ExitStartFailed
	}
}

// configFiles are the configuration files and folders the wrapper with this
// pid runs haproxy on: its -f arguments, or its CONFIG when it has none,
// made absolute against its working folder. nil when they cannot be read.
func configFiles(pid int) []string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	argv := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	config := ""
	if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil {
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, "CONFIG="); ok {
				config = v
			}
		}
	}
	if len(argv) == 0 {
		return nil
	}
	inv, err := haproxy.ParseInvocation(argv[1:], config, "")
	if err != nil {
		return nil
	}
	cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	var files []string
	for i := 0; i+1 < len(inv.Args); i++ {
		switch a := inv.Args[i]; {
		case a == "-f":
			f := inv.Args[i+1]
			if !filepath.IsAbs(f) {
				f = filepath.Join(cwd, f)
			}
			files = append(files, f)
			i++
		case haproxyValueOpts[a]:
			i++
		}
	}
	return files
}

// haproxyValueOpts are haproxy's options that take a value (as in
// internal/haproxy's ParseInvocation): "-L -f" names no configuration.
var haproxyValueOpts = map[string]bool{"-p": true, "-m": true, "-N": true, "-L": true, "-C": true, "-n": true, "-x": true, "-S": true}

// fingerprint identifies the state of the files (and of the files in the
// folders) among paths: inode, size, modification and change times. Only
// metadata is read.
func fingerprint(paths []string) string {
	var b strings.Builder
	see := func(p string) bool {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			fmt.Fprintf(&b, "%s: %v\n", p, err)
			return false
		}
		fmt.Fprintf(&b, "%s %d %d %d.%d %d.%d\n", p, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
		return st.Mode&syscall.S_IFMT == syscall.S_IFDIR
	}
	for _, p := range paths {
		if !see(p) {
			continue
		}
		ents, _ := os.ReadDir(p)
		for _, e := range ents {
			see(filepath.Join(p, e.Name()))
		}
	}
	return b.String()
}
