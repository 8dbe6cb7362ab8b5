package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/status"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// Signal storms and binary swaps against the real haproxy: every case ends
// in a defined state, with no zombie, no leaked fd, at most one queued reload.

// settle waits until at least one reload was settled and none is running or
// queued (the signals sent last may still be on their way: a reload they
// cause later is within what the tests allow).
func (w *wrapperProc) settle() status.Report {
	w.t.Helper()
	var r status.Report
	testutil.WaitFor(w.t, 60*time.Second, "reloads to settle", func() bool {
		r = w.status()
		return r.Reloads >= 1 && !r.ReloadInProgress && !r.ReloadPending
	})
	return r
}

func (w *wrapperProc) assertClean(fdsBefore int) {
	w.t.Helper()
	var live, zombies []int
	testutil.WaitFor(w.t, 20*time.Second, "one live haproxy child and no zombie", func() bool {
		live, zombies = w.children()
		return len(live) == 1 && len(zombies) == 0 && len(w.status().Generations) == 1
	})
	if got := stableFDCount(w.t, w.pid()); got != fdsBefore {
		w.t.Fatalf("wrapper fds: %d, want %d", got, fdsBefore)
	}
	if _, err := servedBy(w.addr); err != nil {
		w.t.Fatalf("not serving: %v", err)
	}
}

func TestBurstDuringReloadCoalesces(t *testing.T) {
	w := startReal(t, true)
	fds := stableFDCount(t, w.pid())
	w.signal(syscall.SIGUSR2)
	w.waitLog("reloading (SIGUSR2)", 10*time.Second)
	for i := 0; i < 50; i++ {
		w.signal(syscall.SIGUSR2)
	}
	st := w.settle()
	if st.Reloads < 1 || st.Reloads > 2 {
		t.Fatalf("%d reloads after a burst of 50 during one: want the one plus at most one more", st.Reloads)
	}
	w.assertClean(fds)
	if st := w.settle(); st.Reloads > 2 {
		t.Fatalf("%d reloads after a burst of 50 during one: want the one plus at most one more", st.Reloads)
	}
}

func TestThousandSIGUSR2InOneSecond(t *testing.T) {
	w := startReal(t, true)
	fds := stableFDCount(t, w.pid())
	wpid := w.pid()
	for i := 0; i < 1000; i++ {
		if err := syscall.Kill(wpid, syscall.SIGUSR2); err != nil {
			t.Fatalf("signal %d: %v (wrapper gone?)", i, err)
		}
		time.Sleep(time.Millisecond)
	}
	st := w.settle()
	t.Logf("1000 SIGUSR2 in ~1s gave %d reloads (%d failed)", st.Reloads, countFailed(st))
	if w.exited() {
		t.Fatalf("wrapper died in the storm")
	}
	if countFailed(st) != 0 {
		t.Fatalf("failed reloads in the storm: %+v", st.History)
	}
	w.assertClean(fds)
}

func countFailed(st status.Report) int {
	n := 0
	for _, h := range st.History {
		if !h.OK {
			n++
		}
	}
	return n
}

func TestHUPAndUSR2Interleaved(t *testing.T) {
	w := startReal(t, true)
	fds := stableFDCount(t, w.pid())
	for i := 0; i < 100; i++ {
		sig := syscall.SIGUSR2
		if i%2 == 1 {
			sig = syscall.SIGHUP
		}
		w.signal(sig)
	}
	st := w.settle()
	if st.Reloads < 1 || countFailed(st) != 0 {
		t.Fatalf("reloads %d, failed %d", st.Reloads, countFailed(st))
	}
	w.assertClean(fds)
}

func TestSIGTERMDuringReload(t *testing.T) {
	w := startReal(t, true)
	w.signal(syscall.SIGUSR2)
	w.waitLog("reloading (SIGUSR2)", 10*time.Second)
	w.signal(syscall.SIGTERM)
	if code := w.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	live, zombies := w.children()
	if len(live)+len(zombies) != 0 {
		t.Fatalf("children left: %v %v", live, zombies)
	}
	assertNoHAProxyFrom(t, w)
}

// assertNoHAProxyFrom checks that no process runs the test's config any more.
func assertNoHAProxyFrom(t *testing.T, w *wrapperProc) {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), w.dir+"/haproxy.cfg") && proc.Alive(atoiOr0(e.Name())) {
			t.Fatalf("haproxy pid %s still runs the test config", e.Name())
		}
	}
}

func TestSIGUSR2DuringStop(t *testing.T) {
	w := startReal(t, true)
	c := testutil.HoldConns(t, w.addr, 1)[0] // keeps the graceful stop waiting
	w.signal(syscall.SIGUSR1)
	w.waitLog("SIGUSR1 received", 10*time.Second)
	w.signal(syscall.SIGUSR2)
	w.waitLog("reload (SIGUSR2) ignored: stopping", 10*time.Second)
	c.Close()
	if code := w.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

func TestWrapperBinaryDeletedThenReplaced(t *testing.T) {
	w := startRealOpts(t, true, wrapperOpts{copy: true})
	dir, addr := w.dir, w.addr
	if err := os.Remove(w.bin); err != nil {
		t.Fatal(err)
	}
	if ans, err := control.RequestText(w.ctlPath, "reload", 30*time.Second); err != nil || !strings.HasPrefix(ans, "ok") {
		t.Fatalf("reload with the binary deleted: %q %v", ans, err)
	}
	if strings.Contains(w.out.String(), "re-executing") {
		t.Fatalf("the wrapper re-executed with its binary deleted")
	}
	// A new binary at the path: the next reload executes it.
	testutil.PlaceSelf(t, dir, "haproxy-systemd-wrapper", true)
	if ans, err := control.RequestText(w.ctlPath, "reload", 30*time.Second); err != nil || !strings.HasPrefix(ans, "ok") {
		t.Fatalf("reload with the binary replaced: %q %v", ans, err)
	}
	if n := strings.Count(w.out.String(), "re-executed: 1 haproxy generation(s) kept"); n != 1 {
		t.Fatalf("%d re-exec lines, want 1 (after the replacement)", n)
	}
	if _, err := servedBy(addr); err != nil {
		t.Fatal(err)
	}
}
