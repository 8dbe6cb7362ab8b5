package proc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotPrivate is a runtime folder or file that another user could have
// written: the wrapper runs as root and hands its files to a root haproxy,
// so it never uses one.
var ErrNotPrivate = errors.New("not private")

// EnsurePrivateDir creates path (mode 0700, and its missing parents 0700)
// or checks the existing folder: not a symlink, a folder, owned by this
// process's user, not writable by group or others. name is the variable
// that set it, for the message.
func EnsurePrivateDir(path, name string) error {
	for _, dir := range parents(path) {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s: create %s: %w", name, dir, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fmt.Errorf("%s: %s: %w", name, path, err)
	}
	fix := "remove it, or set " + name + " to a folder of your own"
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return fmt.Errorf("%s=%s is a symlink: %w: %s", name, path, ErrNotPrivate, fix)
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("%s=%s is not a folder: %w: %s", name, path, ErrNotPrivate, fix)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s=%s is owned by uid %d, not by this user (uid %d): %w: %s", name, path, st.Uid, os.Geteuid(), ErrNotPrivate, fix)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("%s=%s is writable by group or others (mode %04o): %w: chmod go-w it, or %s", name, path, st.Mode&0o7777, ErrNotPrivate, fix)
	}
	return nil
}

// parents lists path's missing ancestors and path, outermost first.
func parents(path string) []string {
	var out []string
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		out = append([]string{p}, out...)
		if p == filepath.Dir(p) {
			break
		}
	}
	return out
}

// ErrHeld is a runtime folder another live wrapper holds.
var ErrHeld = errors.New("held by another wrapper")

// Lock takes the runtime folder's lock file (flock), so that two wrappers
// never share a folder; the file holds the holder's pid. The lock lasts as
// long as the returned file is open (it crosses an upgrade's exec).
func Lock(dir, name string) (*os.File, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|ONoFollow, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: lock %s: %w", name, path, err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	var lerr error
	_ = rc.Control(func(fd uintptr) { lerr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB) })
	if lerr != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		other := strings.TrimSpace(string(b[:n]))
		if _, err := strconv.Atoi(other); err != nil {
			other = "?"
		}
		return nil, fmt.Errorf("%s=%s is in use by another running wrapper (pid %s): %w: give each instance its own folder (a unit's RuntimeDirectory=, or another CONFIG)", name, dir, other, ErrHeld)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}
