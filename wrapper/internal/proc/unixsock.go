package proc

import (
	"errors"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// ListenPrivate listens on a unix stream socket at path created mode 0600
// (the umask is set around the bind, so there is no moment when another user
// could connect).
func ListenPrivate(path string) (*net.UnixListener, error) {
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	return ln, err
}

// UnixListenerFromFile turns a listening unix socket handed over by an
// earlier image into a listener; f is closed.
func UnixListenerFromFile(f *os.File) (*net.UnixListener, error) {
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return nil, errors.New("not a unix listener")
	}
	return ul, nil
}
