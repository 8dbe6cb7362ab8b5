package main

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// listenNotify is a notify socket like systemd's, on a real unixgram socket.
func listenNotify(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readDatagram(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatalf("no notify datagram: %v", err)
	}
	return string(b[:n])
}

func TestNotifyPathAndAbstract(t *testing.T) {
	for _, addr := range []string{filepath.Join(shortDir(t), "notify"), "@hsw-test-" + strconv.Itoa(int(time.Now().UnixNano()))} {
		c := listenNotify(t, addr)
		n := newNotifier(addr)
		if !n.Reloading("reloading") {
			t.Fatalf("%s: Reloading not sent", addr)
		}
		got := readDatagram(t, c)
		lines := strings.Split(strings.TrimSpace(got), "\n")
		if len(lines) != 3 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") || lines[2] != "STATUS=reloading" {
			t.Fatalf("%s: RELOADING datagram = %q", addr, got)
		}
		usec, _ := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
		if now := monotonicUsec(); usec <= 0 || usec > now {
			t.Fatalf("MONOTONIC_USEC=%d not a past CLOCK_MONOTONIC time (now %d)", usec, now)
		}
		n.Ready("a\nb", 42)
		if got := readDatagram(t, c); got != "READY=1\nMAINPID=42\nSTATUS=a b\n" {
			t.Fatalf("READY datagram = %q", got)
		}
	}
}

func TestNotifyNowhereWarnsOnce(t *testing.T) {
	var buf testutil.Buffer
	old := log.w
	log.w = &buf
	defer func() { log.w = old }()
	n := newNotifier(filepath.Join(t.TempDir(), "nobody"))
	if n.Status("x") || n.Status("y") {
		t.Fatal("sent to a socket nobody listens on")
	}
	if c := strings.Count(buf.String(), "NOTIFY_SOCKET="); c != 1 {
		t.Fatalf("%d warnings, want 1: %q", c, buf.String())
	}
	if newNotifier("").Status("x") {
		t.Fatal("sent without NOTIFY_SOCKET")
	}
}

// readDatagramWith reads datagrams until one starts with prefix.
func readDatagramWith(t *testing.T, c *net.UnixConn, prefix string) string {
	t.Helper()
	for i := 0; i < 50; i++ {
		if got := readDatagram(t, c); strings.HasPrefix(got, prefix) {
			return got
		}
	}
	t.Fatalf("no datagram starting with %q", prefix)
	return ""
}
