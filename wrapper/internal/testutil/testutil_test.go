package testutil

import (
	"bufio"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStartExitCodes(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"kill -TERM $$", 143},
	} {
		p := Start(t, exec.Command("/bin/sh", "-c", tc.script))
		select {
		case <-p.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%q still running after 10 s", tc.script)
		}
		if got := p.Code(); got != tc.want {
			t.Errorf("%q: code %d, want %d", tc.script, got, tc.want)
		}
		if !p.Exited() {
			t.Errorf("%q: Exited false after Done", tc.script)
		}
	}
}

func TestStartRunningHasNoCode(t *testing.T) {
	p := Start(t, exec.Command("/bin/sleep", "60")) // killed by Start's cleanup
	if got := p.Code(); got != -1 || p.Exited() {
		t.Errorf("running process: code %d, exited %v; want -1, false", got, p.Exited())
	}
}

func TestPollGivesTheLastDescription(t *testing.T) {
	n := 0
	err := Poll(30*time.Millisecond, time.Millisecond, func() (bool, string) {
		n++
		return false, "seen " + strings.Repeat("x", n%2+1)
	})
	if err == nil || !strings.Contains(err.Error(), "last seen: seen x") {
		t.Fatalf("Poll = %v, want a timeout naming the last description", err)
	}
	if err := Poll(time.Second, time.Millisecond, func() (bool, string) { n++; return n > 100, "" }); err != nil {
		t.Fatalf("Poll of a condition that comes true: %v", err)
	}
}

// inodeOf is the inode of a socket of this process.
func inodeOf(t *testing.T, s interface{ File() (*os.File, error) }) uint64 {
	t.Helper()
	f, err := s.File() // a copy of the descriptor: the same socket
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestListenInodes(t *testing.T) {
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	uds, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(ShortDir(t), "l.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer uds.Close()
	conn, err := net.DialTCP("tcp", nil, tcp.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tcpIno, udsIno, connIno := inodeOf(t, tcp), inodeOf(t, uds), inodeOf(t, conn)

	all := ListenInodes(t, os.Getpid(), "tcp", "tcp6", "unix")
	if !slices.Contains(all, tcpIno) || !slices.Contains(all, udsIno) || slices.Contains(all, connIno) || !slices.IsSorted(all) {
		t.Errorf("ListenInodes(tcp, tcp6, unix) = %v: want sorted, with %d (TCP) and %d (unix), without %d (connected)", all, tcpIno, udsIno, connIno)
	}
	if got := ListenInodes(t, os.Getpid(), "tcp"); !slices.Contains(got, tcpIno) || slices.Contains(got, udsIno) {
		t.Errorf("ListenInodes(tcp) = %v: want %d (TCP), not %d (unix)", got, tcpIno, udsIno)
	}
	port := tcp.Addr().(*net.TCPAddr).Port
	if got := ListenInodesOnPort(t, port); !slices.Equal(got, []uint64{tcpIno}) {
		t.Errorf("ListenInodesOnPort(%d) = %v, want [%d]", port, got, tcpIno)
	}
}

func TestHoldConns(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lines := make(chan string, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				l, _ := bufio.NewReader(c).ReadString('\n')
				lines <- l
			}()
		}
	}()
	conns := HoldConns(t, ln.Addr().String(), 3)
	if len(conns) != 3 {
		t.Fatalf("%d connections, want 3", len(conns))
	}
	for i := 0; i < 3; i++ {
		if got := Recv(t, lines, 5*time.Second, "first line of a held connection"); got != "GET / HTTP/1.1\r\n" {
			t.Errorf("held connection %d sent %q, want the first line of a request", i+1, got)
		}
	}
}

func TestStaleSocket(t *testing.T) {
	path := filepath.Join(ShortDir(t), "stale.sock")
	StaleSocket(t, path)
	if c, err := net.Dial("unix", path); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dialing the stale socket %s: %v, want ECONNREFUSED", path, err)
	}
}
