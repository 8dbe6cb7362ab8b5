package proc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ParsePIDs reads a pid file's text: pids separated by white space. Tokens
// that are not positive integers are returned as garbage, never as pids, so
// they cannot end up on haproxy's command line.
func ParsePIDs(text string) (pids []int, garbage []string) {
	seen := map[int]bool{}
	for _, f := range strings.Fields(text) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 1 || n > 1<<22 {
			garbage = append(garbage, f)
			continue
		}
		if !seen[n] {
			seen[n] = true
			pids = append(pids, n)
		}
	}
	return pids, garbage
}

// ReadPIDFile reads and parses a pid file; a missing file is no pids.
func ReadPIDFile(path string) ([]int, []string, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read pid file %s: %w", path, err)
	}
	if len(b) > 64<<10 {
		b = b[:64<<10]
	}
	pids, garbage := ParsePIDs(string(b))
	return pids, garbage, nil
}

// WritePIDFile writes one pid per line atomically (WriteFileAtomic).
func WritePIDFile(path string, pids []int) error {
	var b strings.Builder
	for _, p := range pids {
		b.WriteString(strconv.Itoa(p))
		b.WriteByte('\n')
	}
	if err := WriteFileAtomic(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write pid file %s: %w", path, err)
	}
	return nil
}

// WriteFileAtomic replaces path with data: a new file of a random name in the
// same folder (created exclusively: nothing planted there is followed or
// written through), then renamed over path, so that a reader never sees
// half a file; a symlink at path is replaced, not followed.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("folder %s: %w", dir, pe.Err)
		}
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp, mode)
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return werr
	}
	return nil
}

// FilterOwn keeps the pids for which own returns true, in order, and returns
// the others apart (for a warning): a pid file may name anything.
func FilterOwn(pids []int, own func(int) bool) (mine, foreign []int) {
	for _, p := range pids {
		if own(p) {
			mine = append(mine, p)
		} else {
			foreign = append(foreign, p)
		}
	}
	return mine, foreign
}
