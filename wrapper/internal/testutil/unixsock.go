package testutil

import (
	"net"
	"os"
	"testing"
)

// StaleSocket leaves at path what a process that ended leaves behind: a
// unix socket file nobody listens on. It fails the test unless the file
// stays.
func StaleSocket(t testing.TB, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatalf("stale socket %s: %v", path, err)
	}
	ln.SetUnlinkOnClose(false)
	if err := ln.Close(); err != nil {
		t.Fatalf("stale socket %s: closing its listener: %v", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("stale socket %s: the file did not stay behind: %v", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("stale socket %s: mode %v, want a socket", path, fi.Mode())
	}
}
