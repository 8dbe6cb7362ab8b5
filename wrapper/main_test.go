package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain lets the test binary impersonate the programs the wrapper runs,
// by the name it is started under (os/exec's own tests do the same): as
// "haproxy" it is the fake haproxy of fakehaproxy_test.go, as
// "haproxy-systemd-wrapper" it is the wrapper itself (so re-exec, signals and
// the supervisor run under the race detector), as "squatter" another user's
// server on a control socket path (private_test.go).
func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case "haproxy":
		os.Exit(fakeHAProxy(os.Args[1:]))
	case "haproxy-systemd-wrapper":
		os.Exit(run(os.Args))
	case "squatter":
		os.Exit(squatter(os.Args[1]))
	}
	os.Exit(m.Run())
}
