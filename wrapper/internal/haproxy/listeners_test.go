package haproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/proc"
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
			if _, err := tcpListeners(); err != nil && way == "sock_diag" {
				testutil.Unavailable(t, "sock_diag refused here (%v): only the /proc way can be tested", err)
			}
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

// TestListenersNoSocket: a live process that holds no socket is an error,
// as a gone one is, not "0 listeners". (A descriptor the test's own
// environment passes on without close-on-exec would reach sleep too: then
// the case cannot be made here.)
func TestListenersNoSocket(t *testing.T) {
	p := testutil.Start(t, exec.Command("sleep", "30"))
	if socks, err := proc.SocketInodes(p.Pid()); err == nil && len(socks) > 0 {
		t.Skipf("sleep inherited %d socket(s) from the test's environment", len(socks))
	}
	if n, err := Listeners(p.Pid()); err == nil || !strings.Contains(err.Error(), "holds no socket") {
		t.Errorf("Listeners(sleep) = %d, %v; want the error that it holds no socket", n, err)
	}
	if err := p.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "sleep to be reaped", p.Exited)
	if n, err := Listeners(p.Pid()); err == nil {
		t.Errorf("Listeners(a reaped pid) = %d, nil; want an error", n)
	}
}

// otherNetNSChild is set in the process TestListenersOtherNetNS starts in a
// network namespace of its own.
const otherNetNSChild = "HSW_TEST_NETNS_CHILD"

// TestListenersOtherNetNS: a haproxy in another network namespace than the
// wrapper's (HAPROXY_BIN through "ip netns exec") has its TCP listener
// counted from its own /proc/PID/net, which sock_diag, answering for the
// wrapper's namespace, cannot see.
func TestListenersOtherNetNS(t *testing.T) {
	if os.Getenv(otherNetNSChild) != "" {
		l, err := net.Listen("tcp", "127.0.0.1:0") // loopback of the new, empty namespace
		if err != nil {
			os.Exit(3)
		}
		defer l.Close()
		os.Stdout.WriteString("listening\n")
		_, _ = io.Copy(io.Discard, os.Stdin) // until the test closes it
		os.Exit(0)
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		testutil.Unavailable(t, "no unshare: apt-get install util-linux")
	}
	cmd := exec.Command(unshare, "--net", os.Args[0], "-test.run=^TestListenersOtherNetNS$")
	cmd.Env = append(os.Environ(), otherNetNSChild+"=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := testutil.Start(t, cmd)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "listening\n" {
		t.Fatalf("the child in its own network namespace said %q (%v): unshare --net needs root", line, err)
	}
	if proc.SameNetNS(p.Pid()) {
		t.Fatal("the child is in the test's network namespace: unshare --net did not take")
	}
	if got := count(t, p.Pid()); got != 1 {
		t.Errorf("%d listeners counted in the other namespace, want 1", got)
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
