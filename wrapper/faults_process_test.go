package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// Faults around the wrapper's own process: a SIGTERM while haproxy starts,
// stderr closed under it (journald restarting). The fault helpers are in
// faults_test.go.

func TestFaultSIGTERMWhileStarting(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			f := newFake(t)
			w := startWrapper(t, f.dir, wrapperOpts{noWait: true, env: f.env("FAKE_VERSION=HAProxy version 2.6.12-1+deb12u4 2023/12/17 - https://haproxy.org/", "FAKE_MODE=hang", "HAPROXY_WRAPPER_START_TIMEOUT=60s")})
			var st []fakeStart
			testutil.WaitFor(t, 20*time.Second, "haproxy to be started", func() bool {
				st = f.starts(t)
				return len(st) == 1 || w.exited()
			})
			if len(st) != 1 {
				t.Fatalf("haproxy not started:\n%s", w.out.String())
			}
			hp := st[0].Pid
			if !proc.Alive(hp) {
				t.Fatalf("the hanging haproxy %d is not running", hp)
			}
			t0 := time.Now()
			w.signal(sig)
			code := w.waitExit(5 * time.Second)
			t.Logf("exit %d after %s", code, time.Since(t0).Round(time.Millisecond))
			if code != 0 {
				t.Errorf("exit code %d after a requested stop during start, want 0 (README: haproxy ended by the very signal forwarded)\n%s", code, w.out.String())
			}
			testutil.WaitFor(t, 5*time.Second, "the starting haproxy to be gone", func() bool { return !proc.Alive(hp) })
			faultNoProcessWith(t, filepath.Join(f.dir, "fake.cfg"))
			faultWantLine(t, w, "stopping ("+unix.SignalName(sig)+" received)")
			faultWantLine(t, w, "exit, haproxy RC=")
		})
	}
}

// TestFaultStderrClosed: journald restarting (or a closed terminal) breaks
// the wrapper's stderr; the wrapper must go on serving, reloading, stopping.
func TestFaultStderrClosed(t *testing.T) {
	bin := requireRealHAProxy(t)
	dir := testutil.ShortDir(t)
	cfg, addr, stats := realConfig(t, dir, "expose-fd listeners")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w := startWrapper(t, dir, wrapperOpts{env: []string{"CONFIG=" + cfg, "HAPROXY_BIN=" + bin, "HAPROXY_STATS_SOCKET=" + stats},
		stdout: pw, stderr: pw, noWait: true})
	pw.Close()
	var seen strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(seen.String(), "serving") {
		n, err := pr.Read(buf)
		if err != nil {
			t.Fatalf("wrapper output ended before serving: %v\n%s", err, seen.String())
		}
		seen.Write(buf[:n])
	}
	pr.Close() // from now on every write to stderr fails with EPIPE
	ctl := filepath.Join(dir, "ctl.sock")
	for i := 0; i < 3; i++ {
		if ans, err := control.RequestText(ctl, "reload", 30*time.Second); err != nil || !strings.HasPrefix(ans, "ok") {
			t.Fatalf("reload %d with stderr closed: %q %v", i, ans, err)
		}
	}
	if _, err := servedBy(addr); err != nil {
		t.Fatalf("not serving with stderr closed: %v", err)
	}
	w.signal(syscall.SIGTERM)
	select {
	case <-w.p.Done():
		if code := w.p.Code(); code != 0 {
			t.Fatalf("wrapper exit after SIGTERM with stderr closed: code %d (want exit 0, not SIGPIPE)", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("wrapper did not exit after SIGTERM")
	}
}
