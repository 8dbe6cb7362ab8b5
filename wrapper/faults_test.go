package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// Bad input and faults (SPEC §5): every case asserts the outcome (exit code,
// the one error line naming the thing and the fix, or that the old haproxy
// keeps serving), not only that nothing crashed.
//
// Already covered elsewhere, so not repeated here:
//   - syntax error in the configuration at reload, reload command answer,
//     old pid serving, next good reload: TestRealBrokenConfigReloadKeepsServing
//   - garbage and foreign pids in haproxy 1.7's own pid file (legacy -Ds
//     mode, where the wrapper reads it): TestLegacyPidFileGarbageAndForeignPidsNeverSignalled
//   - writePIDFile on a symlink and in a missing folder, as a unit:
//     TestWritePIDFileAtomicAndReplacesSymlink (end to end here)
//   - the notifier warning once, as a unit: TestNotifyNowhereWarnsOnce
//     (end to end, across re-exec, here)
//   - long HAPROXY_WRAPPER_CONTROL_SOCKET, as a unit: TestSettingsValidation
//     (end to end, exit code, here)
//   - missing/non-executable haproxy binary, empty CONFIG, odd -v output,
//     hang at start bounded by the start timeout, crash after start, haproxy
//     -c failing with the fake: TestStartFailures, TestHAProxyHangsAtStartIsBounded,
//     TestHAProxyCrashAfterStart
//   - SIGTERM during a reload, binary deleted between reloads: storm_test.go
//
// The cases, by what is at fault: faults_pidfile_test.go (PIDFILE),
// faults_config_test.go (CONFIG), faults_sockets_test.go (the stats,
// notify and control sockets), faults_process_test.go (a SIGTERM while
// starting, a closed stderr). Their shared helpers follow.

// faultServed returns the pid serving HTTP, failing the test if none does.
func faultServed(t *testing.T, w *wrapperProc) int {
	t.Helper()
	pid, err := servedBy(w.addr)
	if err != nil {
		t.Fatalf("haproxy does not serve %s: %v\n%s", w.addr, err, w.out.String())
	}
	return pid
}

// faultReload asks for a synchronous reload and returns the answer line.
func faultReload(t *testing.T, w *wrapperProc) string {
	t.Helper()
	ans, err := control.RequestText(w.ctlPath, "reload", 40*time.Second)
	if err != nil {
		t.Fatalf("reload command: %q, %v\n%s", ans, err, w.out.String())
	}
	return strings.TrimSpace(ans)
}

// faultReloadOK reloads, requires "ok", and requires a new pid to serve.
func faultReloadOK(t *testing.T, w *wrapperProc) int {
	t.Helper()
	before := faultServed(t, w)
	if ans := faultReload(t, w); !strings.HasPrefix(ans, "ok generation") {
		t.Fatalf("reload answered %q, want ok\n%s", ans, w.out.String())
	}
	after := faultServed(t, w)
	if after == before {
		t.Fatalf("after a successful reload still served by pid %d", before)
	}
	if st := w.status(); !st.Serving || st.PID != after {
		t.Fatalf("status after reload: serving %v pid %d, HTTP served by %d", st.Serving, st.PID, after)
	}
	return after
}

// faultStop sends SIGTERM and requires exit code 0.
func faultStop(t *testing.T, w *wrapperProc) {
	t.Helper()
	w.signal(syscall.SIGTERM)
	if code := w.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0\n%s", code, w.out.String())
	}
}

// faultLines returns the wrapper log lines that contain every substring.
func faultLines(out string, substrs ...string) []string {
	var got []string
next:
	for _, l := range strings.Split(out, "\n") {
		for _, s := range substrs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		got = append(got, l)
	}
	return got
}

// faultWantLine fails unless one log line holds every substring. It polls a
// moment: the wrapper's stderr reaches the buffer through a pipe, possibly
// after an answer on the control socket.
func faultWantLine(t *testing.T, w *wrapperProc, substrs ...string) string {
	t.Helper()
	var ls []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		exited := w.exited() // then the output is complete
		if ls = faultLines(w.out.String(), substrs...); len(ls) > 0 || exited || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(ls) == 0 {
		t.Fatalf("no log line with all of %q:\n%s", substrs, w.out.String())
	}
	return ls[0]
}

// faultCmdline is a process's argv.
func faultCmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

func faultHasArg(argv []string, arg string) bool {
	for _, a := range argv {
		if a == arg {
			return true
		}
	}
	return false
}

// faultNoProcessWith fails if a live process has needle in its command line.
func faultNoProcessWith(t *testing.T, needle string) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "no process running "+needle, func() bool {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid := atoiOr0(e.Name())
			if pid == 0 || pid == os.Getpid() {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err == nil && strings.Contains(string(b), needle) && proc.Alive(pid) {
				return false
			}
		}
		return true
	})
}

// faultPIDFileHolds requires path to be a regular file holding exactly pid.
func faultPIDFileHolds(t *testing.T, path string, pid int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("pid file %s: %v, mode %v: want a regular file", path, err, fi)
	}
	b, _ := os.ReadFile(path)
	if string(b) != itoa(pid)+"\n" {
		t.Fatalf("pid file %s holds %q, want %q", path, b, itoa(pid)+"\n")
	}
}
