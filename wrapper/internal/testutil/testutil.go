// Package testutil holds the small helpers the tests and the benchmark share.
package testutil

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
)

// Buffer collects a process's output; safe for a writer and readers at once.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FreePort returns a TCP port free on 127.0.0.1 at the time of the call.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Port is a TCP port free on 127.0.0.1 at the time of the call (FreePort);
// the test fails when there is none.
func Port(t testing.TB) int {
	t.Helper()
	p, err := FreePort()
	if err != nil {
		t.Fatalf("no free TCP port on 127.0.0.1: %v", err)
	}
	return p
}

// Unavailable ends a test that needs what this machine lacks (a program, a
// package, a systemd to boot), said by format and args: under CI=true,
// where make deps installs all the tests need, the test fails; elsewhere it
// is skipped.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: failing instead of skipping)", msg)
	}
	t.Skipf("%s (skipped: CI=true makes this a failure)", msg)
}
