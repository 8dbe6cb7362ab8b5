package haproxy

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// The version cache remembers what "haproxy -v" said of a binary, keyed by
// the binary's identity (path, device, inode, size, modification and change
// times), so that a restart does not pay for a "haproxy -v" (about 16 ms for
// Debian's haproxy 2.6: the dynamic loader of a binary with OpenSSL, Lua and
// PCRE2) before its first start. Any change of the binary (an upgrade
// renames a new file over it: a new inode and change time) misses.
//
// The file is the wrapper's own: it is read only when it is a regular file
// (never through a symlink) owned by the wrapper's user and writable by
// nobody else, in a folder of the same kind; anything else is ignored and
// "haproxy -v" runs. It is written atomically.

// maxVersionCache bounds the file (lines are short; a handful of binaries).
const maxVersionCache = 64 << 10

// binaryKey is the identity of the binary at path.
func binaryKey(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %d %d %d %d.%09d %d.%09d", abs, st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec), nil
}

// privateFile checks that path (and its folder) belong to this user and are
// writable by nobody else, without following a symlink.
func privateFile(path string) error {
	uid := uint32(os.Getuid())
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Dir(path), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != uid || st.Mode&0o022 != 0 {
		return fmt.Errorf("%s is not a folder of uid %d writable by it alone", filepath.Dir(path), uid)
	}
	if err := unix.Lstat(path, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != uid || st.Mode&0o022 != 0 {
		return fmt.Errorf("%s is not a regular file of uid %d writable by it alone", path, uid)
	}
	return nil
}

// CachedVersion returns what "haproxy -v" said of the binary at bin when the
// cache file remembers this very binary.
func CachedVersion(cache, bin string) (string, bool) {
	if cache == "" {
		return "", false
	}
	key, err := binaryKey(bin)
	if err != nil || privateFile(cache) != nil {
		return "", false
	}
	f, err := os.OpenFile(cache, os.O_RDONLY|proc.ONoFollow, 0)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(&limitedReader{f: f, left: maxVersionCache})
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "\t")
		if ok && k == key {
			return v, true
		}
	}
	return "", false
}

// RememberVersion records full (ParseVersion's text) for the binary at bin,
// keeping the other binaries' lines. Errors are returned for a log line at
// most: the cache only saves time.
func RememberVersion(cache, bin, full string) error {
	if cache == "" || strings.ContainsAny(full, "\t\n") {
		return nil
	}
	key, err := binaryKey(bin)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(cache), 0o755); err != nil {
		return err
	}
	lines := []string{key + "\t" + full}
	if privateFile(cache) == nil {
		if b, err := os.ReadFile(cache); err == nil && len(b) < maxVersionCache {
			abs, _ := filepath.Abs(bin)
			for _, l := range strings.Split(string(b), "\n") {
				k, _, ok := strings.Cut(l, "\t")
				if ok && !strings.HasPrefix(k, abs+" ") && len(lines) < 32 {
					lines = append(lines, l)
				}
			}
		}
	} else if _, err := os.Lstat(cache); err == nil {
		return fmt.Errorf("version cache %s: %w: left alone", cache, privateFile(cache))
	}
	if err := privateDir(filepath.Dir(cache)); err != nil {
		return err
	}
	return proc.WriteFileAtomic(cache, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

func privateDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != uint32(os.Getuid()) || st.Mode&0o022 != 0 {
		return errors.New(dir + " is not a folder of this user writable by it alone")
	}
	return nil
}

type limitedReader struct {
	f    *os.File
	left int
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errors.New("version cache too large")
	}
	if len(p) > l.left {
		p = p[:l.left]
	}
	n, err := l.f.Read(p)
	l.left -= n
	return n, err
}
