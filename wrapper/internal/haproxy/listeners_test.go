package haproxy

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// TestListeners counts this process's own listening sockets, by sock_diag
// and by /proc (sock_diag refused): a TCP listener on 127.0.0.1 and one on
// ::1 when the host has IPv6, a bound UDP socket, a listening unix socket;
// not a connected TCP socket, nor the unix socket named in except; and
// one less once a listener is closed.
func TestListeners(t *testing.T) {
	for _, way := range []string{"sock_diag", "/proc"} {
		t.Run(way, func(t *testing.T) {
			if way == "/proc" {
				saved := tcpListeners
				tcpListeners = func() (map[uint64]bool, error) { return nil, errors.New("refused") }
				t.Cleanup(func() { tcpListeners = saved })
			}
			pid := os.Getpid()
			dir := testutil.ShortDir(t)
			except := filepath.Join(dir, "ready.sock")
			listen(t, "unix", except) // a socket, so that the process holds one
			base := count(t, pid, except)
			tcp := listen(t, "tcp", "127.0.0.1:0")
			want := base + 1
			if l6, err := net.Listen("tcp6", "[::1]:0"); err == nil {
				t.Cleanup(func() { l6.Close() })
				want++
			}
			udp, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer udp.Close()
			want++
			listen(t, "unix", filepath.Join(dir, "admin.sock"))
			want++
			c, err := net.Dial("tcp", tcp.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := count(t, pid, except); got != want {
				t.Fatalf("%d listeners counted, want %d (%d before the test's own)", got, want, base)
			}
			tcp.Close()
			if got := count(t, pid, except); got != want-1 {
				t.Errorf("%d listeners counted after one closed, want %d", got, want-1)
			}
		})
	}
}

// TestListenersNoSocket: a process that holds no socket is an error (a
// gone haproxy, a zombie), not "0 listeners".
func TestListenersNoSocket(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	p := testutil.Start(t, cmd)
	if n, err := Listeners(p.Pid()); err == nil || !strings.Contains(err.Error(), "holds no socket") {
		t.Errorf("Listeners(sleep) = %d, %v; want the error that it holds no socket", n, err)
	}
}

func count(t *testing.T, pid int, except ...string) int {
	t.Helper()
	n, err := Listeners(pid, except...)
	if err != nil {
		t.Fatalf("Listeners(%d): %v", pid, err)
	}
	return n
}

func listen(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
