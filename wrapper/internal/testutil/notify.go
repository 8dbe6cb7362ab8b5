package testutil

import (
	"net"
	"strings"
	"testing"
	"time"
)

// ListenNotify is a notify socket like systemd's at addr (a path, or
// "@name" for an abstract one), on a real unixgram socket closed at the end
// of the test.
func ListenNotify(t testing.TB, addr string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ReadDatagram reads one notify datagram, waiting 5 s at the most.
func ReadDatagram(t testing.TB, c *net.UnixConn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatalf("no notify datagram: %v", err)
	}
	return string(b[:n])
}

// ReadDatagramWith reads datagrams until one starts with prefix (50 at the
// most).
func ReadDatagramWith(t testing.TB, c *net.UnixConn, prefix string) string {
	t.Helper()
	for i := 0; i < 50; i++ {
		if got := ReadDatagram(t, c); strings.HasPrefix(got, prefix) {
			return got
		}
	}
	t.Fatalf("no datagram starting with %q", prefix)
	return ""
}
