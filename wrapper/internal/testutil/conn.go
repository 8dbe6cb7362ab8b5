package testutil

import (
	"io"
	"net"
	"testing"
	"time"
)

// DialHalfRequest connects to addr and sends the first line of an HTTP
// request: haproxy keeps such a connection open (also through a soft stop)
// waiting for the rest of the headers. Reads and writes on it give up after
// 20 s.
func DialHalfRequest(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// HoldConns opens n connections to addr with DialHalfRequest, so haproxy
// keeps them, and closes them at the end of the test (closing them before
// is fine).
func HoldConns(t testing.TB, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := 0; i < n; i++ {
		c, err := DialHalfRequest(addr)
		if err != nil {
			t.Fatalf("holding connection %d of %d to %s: %v", i+1, n, addr, err)
		}
		conns = append(conns, c)
	}
	return conns
}
