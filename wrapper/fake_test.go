package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// Tests with the fake haproxy (fakehaproxy_test.go): legacy 1.7 behaviour,
// crashes, hangs and odd output.

type fakeEnv struct {
	dir, bin, log string
}

func newFake(t *testing.T) fakeEnv {
	t.Helper()
	dir := testutil.ShortDir(t)
	f := fakeEnv{dir: dir, log: filepath.Join(dir, "fake.log")}
	f.bin = testutil.PlaceSelf(t, dir, "haproxy", false)
	if err := os.WriteFile(filepath.Join(dir, "fake.cfg"), []byte("# fake\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f fakeEnv) env(extra ...string) []string {
	return append([]string{"HAPROXY_BIN=" + f.bin, "CONFIG=" + filepath.Join(f.dir, "fake.cfg"), "FAKE_LOG=" + f.log}, extra...)
}

// starts reads the fake's start records.
func (f fakeEnv) starts(t *testing.T) []fakeStart {
	t.Helper()
	return readJSONLines[fakeStart](t, f.log)
}

func TestLegacy17DsReadinessPipeAndSf(t *testing.T) {
	f := newFake(t)
	stats := filepath.Join(f.dir, "admin.sock")
	ln, err := net.Listen("unix", stats) // -x needs a socket to be there
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	notify := filepath.Join(f.dir, "notify")
	nc := testutil.ListenNotify(t, notify)
	w := startWrapper(t, f.dir, wrapperOpts{env: f.env("HAPROXY_STATS_SOCKET="+stats, "NOTIFY_SOCKET="+notify, "WATCHDOG_USEC=1000000000")})
	if got := testutil.ReadDatagramWith(t, nc, "READY=1"); !strings.Contains(got, "MAINPID="+itoa(w.pid())+"\n") {
		t.Fatalf("READY datagram %q does not name the wrapper as MAINPID", got)
	}
	st := f.starts(t)
	if len(st) != 1 {
		t.Fatalf("%d starts, want 1", len(st))
	}
	first := st[0]
	if got, want := strings.Join(first.Args, " "), "-f "+filepath.Join(f.dir, "fake.cfg")+" -p "+filepath.Join(f.dir, "haproxy.pid")+" -Ds"; got != want {
		t.Fatalf("1.7 start argv = %q, want %q", got, want)
	}
	if first.WrapperFD != "3" || first.NotifySocket || first.Watchdog {
		t.Fatalf("1.7 environment: HAPROXY_WRAPPER_FD=%q NOTIFY_SOCKET leaked=%v WATCHDOG_USEC leaked=%v", first.WrapperFD, first.NotifySocket, first.Watchdog)
	}
	w.signal(syscall.SIGHUP)
	w.waitReloads(1)
	testutil.ReadDatagramWith(t, nc, "RELOADING=1\nMONOTONIC_USEC=")
	if got := testutil.ReadDatagramWith(t, nc, "READY=1"); !strings.Contains(got, " ago: ok") {
		t.Fatalf("READY after the reload %q does not say it succeeded", got)
	}
	st = f.starts(t)
	if len(st) != 2 {
		t.Fatalf("%d starts after a reload, want 2", len(st))
	}
	// -sf, and no -x: haproxy 1.7 does not know it (it would print its
	// usage and exit 1 on every reload).
	if got, want := strings.Join(st[1].Args, " "), "-Ds -sf "+itoa(first.Pid); !strings.HasSuffix(got, want) {
		t.Fatalf("reload argv = %q, want it to end with %q (no -x before haproxy 1.8)", got, want)
	}
	if strings.Contains(w.out.String(), "re-executing") {
		t.Fatalf("an ordinary reload re-executed the wrapper (it must stay in the same image)")
	}
	w.signal(syscall.SIGTERM)
	if code := w.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// TestLegacyFamilies runs each haproxy <= 1.7 family as the fake
// impersonates it (SPEC §7) with HAPROXY_STATS_SOCKET set: 1.5.0-1.5.18 and
// 1.6 (no readiness pipe: ready by the pid file), 1.5.19 and 1.7 (the pipe,
// which also closes when haproxy exits). Each starts, reloads with -sf and
// never -x, and stops; a reload whose new processes die at once fails, and
// the old generation keeps serving.
func TestLegacyFamilies(t *testing.T) {
	for _, tc := range []struct {
		version string
		pipe    bool
	}{
		{"1.5.18", false}, {"1.6.9", false}, {"1.5.19", true}, {"1.7.11", true},
	} {
		t.Run(tc.version, func(t *testing.T) {
			f := newFake(t)
			stats := filepath.Join(f.dir, "admin.sock")
			ln, err := net.Listen("unix", stats)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			modeFile := filepath.Join(f.dir, "mode")
			w := startWrapper(t, f.dir, wrapperOpts{env: f.env("FAKE_VERSION=HA-Proxy version "+tc.version+" 2018/01/01",
				"HAPROXY_STATS_SOCKET="+stats, "FAKE_MODE_FILE="+modeFile, "HAPROXY_WRAPPER_START_TIMEOUT=10s")})
			st := f.starts(t)
			if len(st) != 1 {
				t.Fatalf("%d starts, want 1", len(st))
			}
			if wantFD := map[bool]string{true: "3", false: ""}[tc.pipe]; st[0].WrapperFD != wantFD {
				t.Errorf("HAPROXY_WRAPPER_FD=%q, want %q", st[0].WrapperFD, wantFD)
			}
			r0 := w.status()
			if !r0.Serving || r0.PID != st[0].Pid {
				t.Fatalf("after the start: serving %v pid %d, want pid %d", r0.Serving, r0.PID, st[0].Pid)
			}
			// status names the processes that serve: the pid file's.
			if g := r0.Generations; len(g) != 1 || len(g[0].Workers) != 1 || g[0].Workers[0] != st[0].Pid {
				t.Errorf("status generations %+v: want the pid file's workers [%d]", g, st[0].Pid)
			}

			w.signal(syscall.SIGUSR2)
			if r := w.waitReloads(1); r.LastReload == nil || !r.LastReload.OK {
				t.Fatalf("reload: %+v", r.LastReload)
			}
			st = f.starts(t)
			args := strings.Join(st[1].Args, " ")
			if !strings.HasSuffix(args, "-Ds -sf "+itoa(st[0].Pid)) || strings.Contains(args, "-x") {
				t.Fatalf("reload argv %q: want -Ds -sf %d and no -x", args, st[0].Pid)
			}

			// A new generation that dies at once: its pipe (if any)
			// closes at its exit; the reload must fail, not succeed.
			if err := os.WriteFile(modeFile, []byte("exit"), 0o644); err != nil {
				t.Fatal(err)
			}
			w.signal(syscall.SIGUSR2)
			r := w.waitReloads(2)
			if r.LastReload == nil || r.LastReload.OK {
				t.Fatalf("a reload whose haproxy exited at once: %+v, want a failure", r.LastReload)
			}
			if !r.Serving || r.PID != st[1].Pid || !proc.Alive(st[1].Pid) {
				t.Fatalf("after the failed reload: serving %v pid %d (alive %v), want generation pid %d serving", r.Serving, r.PID, proc.Alive(st[1].Pid), st[1].Pid)
			}
			w.signal(syscall.SIGTERM)
			if code := w.waitExit(10 * time.Second); code != 0 {
				t.Fatalf("exit code %d, want 0", code)
			}
		})
	}
}

func TestLegacyPidFileGarbageAndForeignPidsNeverSignalled(t *testing.T) {
	f := newFake(t)
	w := startWrapper(t, f.dir, wrapperOpts{env: f.env()})
	first := f.starts(t)[0]
	// A foreign process of the test's own, named in the pid file with garbage.
	sleeper := startSleeper(t)
	pidfile := filepath.Join(f.dir, "haproxy.pid")
	if err := os.WriteFile(pidfile, []byte("garbage\n"+itoa(sleeper)+"\n-3\n$(rm -rf /)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.signal(syscall.SIGUSR2)
	w.waitReloads(1)
	st := f.starts(t)
	got := strings.Join(st[1].Args, " ")
	if strings.Contains(got, itoa(sleeper)) || strings.Contains(got, "garbage") || !strings.HasSuffix(got, "-sf "+itoa(first.Pid)) {
		t.Fatalf("reload argv = %q: want -sf with the wrapper's own pid %d only", got, first.Pid)
	}
	for _, want := range []string{"holds garbage", "not haproxy processes of this wrapper: not signalled"} {
		if !strings.Contains(w.out.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	w.signal(syscall.SIGTERM)
	w.waitExit(10 * time.Second)
	if !proc.Alive(sleeper) {
		t.Fatalf("the foreign process %d named in the pid file was killed", sleeper)
	}
}

// startSleeper starts a foreign process, ended by pid at cleanup.
func startSleeper(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/sleep", []string{"sleep", "60"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill(); p.Wait() })
	return p.Pid
}

func TestHAProxyCrashAfterStart(t *testing.T) {
	f := newFake(t)
	w := startWrapper(t, f.dir, wrapperOpts{env: f.env("FAKE_VERSION=HAProxy version 2.6.0-fake 2022/05/31", "FAKE_MODE=crash", "FAKE_DELAY=1s")})
	if code := w.waitExit(20 * time.Second); code != 3 {
		t.Fatalf("exit code %d, want haproxy's 3", code)
	}
	if !strings.Contains(w.out.String(), "died: exit code 3") {
		t.Fatalf("log does not report the crash")
	}
}

func TestHAProxyHangsAtStartIsBounded(t *testing.T) {
	f := newFake(t)
	w := startWrapper(t, f.dir, wrapperOpts{noWait: true, env: f.env("FAKE_VERSION=HAProxy version 2.6.0-fake", "FAKE_MODE=hang", "HAPROXY_WRAPPER_START_TIMEOUT=4s")})
	if code := w.waitExit(20 * time.Second); code != proc.ExitStartFailed {
		t.Fatalf("exit code %d, want %d", code, proc.ExitStartFailed)
	}
	if !strings.Contains(w.out.String(), "did not serve within 4s (HAPROXY_WRAPPER_START_TIMEOUT)") {
		t.Fatalf("log does not name the timeout")
	}
	if st := f.starts(t); len(st) != 1 || proc.Alive(st[0].Pid) {
		t.Fatalf("the hung haproxy is still alive: %+v", st)
	}
}

func TestStartFailures(t *testing.T) {
	tests := []struct {
		name    string
		env     func(f fakeEnv) []string
		code    int
		message string
	}{
		{"haproxy exits at start", func(f fakeEnv) []string { return f.env("FAKE_VERSION=HAProxy version 2.6.0-fake", "FAKE_MODE=exit") },
			2, "exited during start: exit code 2"},
		{"odd version output", func(f fakeEnv) []string { return f.env("FAKE_VERSION=Segmentation fault") },
			proc.ExitStartFailed, `no version in 'haproxy -v' output "Segmentation fault"`},
		{"invalid config at start (opt-in check)", func(f fakeEnv) []string {
			return append(f.env("FAKE_CHECK_RC=1"), "HAPROXY_WRAPPER_CHECK=true")
		}, 1, "configuration check failed (exit code 1): [ALERT]"},
		{"missing binary", func(f fakeEnv) []string { return append(f.env(), "HAPROXY_BIN="+f.dir+"/nope") },
			proc.ExitNotFound, "nope: not found: install haproxy or set HAPROXY_BIN"},
		{"binary not executable", func(f fakeEnv) []string {
			p := filepath.Join(f.dir, "noexec")
			os.WriteFile(p, []byte("#!/bin/sh\n"), 0o644)
			return append(f.env(), "HAPROXY_BIN="+p)
		}, proc.ExitNotExec, "noexec: not executable"},
		{"empty CONFIG", func(f fakeEnv) []string { return append(f.env(), "CONFIG=") },
			proc.ExitUsage, "CONFIG is set but empty"},
		{"bad duration", func(f fakeEnv) []string { return append(f.env(), "HAPROXY_WRAPPER_START_TIMEOUT=soon") },
			proc.ExitUsage, "HAPROXY_WRAPPER_START_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			w := startWrapper(t, f.dir, wrapperOpts{noWait: true, env: tt.env(f)})
			if code := w.waitExit(20 * time.Second); code != tt.code {
				t.Fatalf("exit code %d, want %d:\n%s", code, tt.code, w.out.String())
			}
			if !strings.Contains(w.out.String(), tt.message) {
				t.Fatalf("log lacks %q:\n%s", tt.message, w.out.String())
			}
			// Counted at the default level (info): debug lines are the
			// state machine's trace.
			n := 0
			for _, l := range strings.Split(strings.TrimSpace(w.out.String()), "\n") {
				if !strings.HasPrefix(l, "<7>") {
					n++
				}
			}
			if n > 5 {
				t.Errorf("the failure took %d lines, want a short clear message", n)
			}
		})
	}
}

func TestUserStartModeFlagsRefused(t *testing.T) {
	f := newFake(t)
	w := startWrapper(t, f.dir, wrapperOpts{noWait: true, env: f.env(), args: []string{"-Ws"}})
	if code := w.waitExit(10 * time.Second); code != proc.ExitUsage {
		t.Fatalf("exit code %d, want %d", code, proc.ExitUsage)
	}
	if !strings.Contains(w.out.String(), "-Ws (master-worker mode) would make haproxy its own supervisor") {
		t.Fatalf("log: %s", w.out.String())
	}
}

func TestStopTimeoutKillsStubbornHAProxy(t *testing.T) {
	f := newFake(t)
	w := startWrapper(t, f.dir, wrapperOpts{env: f.env("FAKE_VERSION=HAProxy version 2.6.0-fake", "FAKE_MODE=stubborn", "HAPROXY_WRAPPER_STOP_TIMEOUT=1s")})
	w.signal(syscall.SIGTERM)
	if code := w.waitExit(20 * time.Second); code != 137 {
		t.Fatalf("exit code %d, want 137 (haproxy had to be killed)", code)
	}
	if !strings.Contains(w.out.String(), "haproxy still running 1s after the stop: SIGKILL") {
		t.Fatalf("log does not say the stop timed out")
	}
	if st := f.starts(t); proc.Alive(st[0].Pid) {
		t.Fatalf("haproxy pid %d still alive", st[0].Pid)
	}
}
