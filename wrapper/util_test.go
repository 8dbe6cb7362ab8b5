package main

import (
	"io"
	"net"
	"strconv"
	"time"
)

func itoa(n int) string { return strconv.Itoa(n) }

// dialHalfRequest opens a connection and sends the first line of a request.
func dialHalfRequest(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
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

func atoiOr0(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
