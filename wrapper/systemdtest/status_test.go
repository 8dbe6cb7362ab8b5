package systemdtest

// The wrapper's live STATUS= line and its watchdog, under a real systemd.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// notifyKind is the Type=notify unit (contrib/systemd/haproxy.service.in).
func notifyKind(t *testing.T) unitKind {
	t.Helper()
	for _, k := range unitKinds {
		if k.name == "notify" {
			return k
		}
	}
	t.Fatal("no notify unit kind")
	return unitKind{}
}

// statusWatcher polls StatusText and logs every distinct value it sees.
type statusWatcher struct {
	f    *fixture
	seen []string
	last string
}

// wait polls `systemctl show -p StatusText` until cond holds and returns the
// value that satisfied it.
func (w *statusWatcher) wait(timeout time.Duration, what string, cond func(string) bool) string {
	t := w.f.t
	t.Helper()
	var cur string
	err := testutil.Poll(timeout, 50*time.Millisecond, func() (bool, string) {
		m, err := w.f.s.show(unitName, "StatusText")
		if err != nil {
			return false, err.Error()
		}
		cur = m["StatusText"]
		if cur != w.last {
			w.last = cur
			w.seen = append(w.seen, cur)
			t.Logf("StatusText: %q", cur)
		}
		return cond(cur), fmt.Sprintf("StatusText=%q", cur)
	})
	if err != nil {
		t.Fatalf("waiting for StatusText %s: %v", what, err)
	}
	return cur
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestStatusTextShowsLiveFigures(t *testing.T) {
	f := setup(t, notifyKind(t))
	// The held connections send an incomplete request: the default
	// configuration's "timeout http-request 5s" would close them, so the
	// frontend waits longer here.
	writeFile(t, f.cfg, haproxyConfig(f.port, "config-a", "timeout http-request 120s", "timeout client 120s"))
	f.s.WriteDropIn(unitName, "20-status.conf", "[Service]\nEnvironment=HAPROXY_WRAPPER_STATUS_INTERVAL=200ms\n")
	f.s.DaemonReload()
	if env := f.s.Show(unitName, "Environment")["Environment"]; !strings.Contains(env, "HAPROXY_WRAPPER_STATUS_INTERVAL=200ms") ||
		!strings.Contains(env, "HAPROXY_STATS_SOCKET="+statsSock) {
		t.Fatalf("drop-ins not applied: Environment=%q", env)
	}
	st := f.start()
	main := mainPID(st)
	w := &statusWatcher{f: f}

	conns := testutil.HoldConns(t, fmt.Sprintf("127.0.0.1:%d", f.port), 10)
	live := w.wait(10*time.Second, `with " · 10 conns"`, func(s string) bool {
		return containsAll(s, "haproxy ", " pid ", " gen 1 ", " · 10 conns (")
	})
	if !strings.HasPrefix(live, "haproxy ") || strings.Contains(live, "draining") {
		t.Errorf("live StatusText %q: want %q with no draining generation", live, "haproxy VERSION pid N gen 1 · 10 conns (X/s)")
	}
	if hs := f.haproxyChildren(main); len(hs) == 1 && !strings.Contains(live, fmt.Sprintf(" pid %d gen 1 ", hs[0])) {
		t.Errorf("StatusText %q does not name the haproxy child pid %d", live, hs[0])
	}

	// systemctl status shows the same live line.
	status, _ := f.s.Systemctl("status", "--lines=10", unitName)
	t.Logf("systemctl status %s:\n%s", unitName, status)
	var statusLine string
	for _, l := range strings.Split(status, "\n") {
		if strings.Contains(l, "Status:") {
			statusLine = strings.TrimSpace(l)
		}
	}
	if !strings.HasPrefix(statusLine, `Status: "haproxy `) || !strings.Contains(statusLine, " · 10 conns (") {
		t.Errorf("systemctl status: want a line `Status: \"haproxy ... · 10 conns (X/s)\"`, got %q", statusLine)
	}

	// Reload: the old generation drains the 10 held connections.
	if out, err := f.s.Systemctl("reload", unitName); err != nil {
		f.dumpStatus()
		t.Fatalf("systemctl reload: %v: %s", err, out)
	}
	draining := w.wait(10*time.Second, `with "gen 2", "1 old gen draining (10 conns)" and "reloaded"`, func(s string) bool {
		return containsAll(s, " gen 2 ", "1 old gen draining (10 conns)", "reloaded")
	})
	t.Logf("after the reload: %q", draining)
	if hs := f.haproxyChildren(main); len(hs) != 2 {
		t.Errorf("after the reload: haproxy children of %d are %v, want the new and the draining generation", main, hs)
	}

	// Closing the connections ends the old generation.
	for _, c := range conns {
		c.Close()
	}
	done := w.wait(15*time.Second, "without the draining generation", func(s string) bool {
		return strings.Contains(s, " gen 2 ") && !strings.Contains(s, "draining")
	})
	if !strings.Contains(done, "reloaded") {
		t.Errorf("StatusText %q lost the last reload", done)
	}
	if st2 := f.state(); mainPID(st2) != main || st2["ActiveState"] != "active" {
		t.Errorf("after reload and drain: %s (MainPID before %d)", FormatState(st2), main)
	}
	t.Logf("StatusText values seen, in order:\n  %s", strings.Join(quoteAll(w.seen), "\n  "))
}

func quoteAll(ss []string) []string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return q
}

// hostProc is a process of the booted systemd seen from the host.
type hostProc struct {
	nsPid, hostPid int
	start          string // /proc/PID/stat starttime, against pid reuse
}

// procStart is the starttime field of /proc/PID/stat (host pid).
func procStart(hostPid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", hostPid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	// After "comm)": state is field 3, starttime field 22.
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// procState is the state letter of /proc/PID/stat (host pid).
func procStateOf(hostPid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", hostPid))
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 0 {
			return f[0]
		}
	}
	return ""
}

// alive tells whether the host process is still the same one (not reused).
func (p hostProc) alive() bool {
	st := procStart(p.hostPid)
	return st != "" && st == p.start && procStateOf(p.hostPid) != "Z"
}

// hostPidOf maps a pid of the booted systemd's PID namespace to a host pid:
// the unit's cgroup.procs, read from the host, lists host pids, and the last
// field of each one's "NSpid:" line in /proc/PID/status is its pid in the
// innermost namespace.
func (f *fixture) hostPidOf(nsPid int) (hostProc, error) {
	cg := f.s.Show(unitName, "ControlGroup")["ControlGroup"]
	procs, err := f.s.CgroupProcs(cg)
	if err != nil {
		return hostProc{}, err
	}
	for _, hp := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", hp))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(l, "NSpid:") {
				continue
			}
			fl := strings.Fields(l)
			if n, _ := strconv.Atoi(fl[len(fl)-1]); n == nsPid && len(fl) >= 3 {
				return hostProc{nsPid: nsPid, hostPid: hp, start: procStart(hp)}, nil
			}
		}
	}
	return hostProc{}, fmt.Errorf("no process of %s (host pids %v) has namespace pid %d", cg, procs, nsPid)
}

func TestWatchdogRestartsHungHAProxy(t *testing.T) {
	f := setup(t, notifyKind(t))
	f.s.WriteDropIn(unitName, "20-watchdog.conf", "[Service]\nWatchdogSec=2\nRestart=always\nRestartSec=100ms\n")
	f.s.DaemonReload()
	st := f.start()
	// systemd 252 reports WatchdogUSec=infinity until the service started.
	if p := f.s.Show(unitName, "WatchdogUSec", "Restart", "DropInPaths"); p["WatchdogUSec"] != "2s" || p["Restart"] != "always" {
		t.Fatalf("drop-in not applied: %s", FormatState(p))
	}
	main := mainPID(st)
	cg := f.s.Show(unitName, "ControlGroup")["ControlGroup"]
	if j, ok := f.s.WaitJournal(unitName, "watchdog: pinging every 1s", 10*time.Second); !ok {
		t.Fatalf("the wrapper never logged that it pings the watchdog every 1s (WATCHDOG_USEC not seen?); journal:\n%s", j)
	}

	hs := f.haproxyChildren(main)
	if len(hs) != 1 {
		t.Fatalf("haproxy children of MainPID %d: %v, want one; descendants %v", main, hs, f.s.Descendants(main))
	}
	h := hs[0]
	hp, err := f.hostPidOf(h)
	if err != nil {
		t.Fatalf("host pid of haproxy %d: %v", h, err)
	}
	wrapperHost, err := f.hostPidOf(main)
	if err != nil {
		t.Fatalf("host pid of the wrapper %d: %v", main, err)
	}
	// Whatever happens, nothing stopped is left behind (this runs before the
	// booted systemd's teardown).
	t.Cleanup(func() {
		if hp.alive() {
			t.Errorf("the stopped haproxy (host pid %d, state %s) is still alive at cleanup: SIGCONT+SIGKILL", hp.hostPid, procStateOf(hp.hostPid))
			_ = syscall.Kill(hp.hostPid, syscall.SIGCONT)
			_ = syscall.Kill(hp.hostPid, syscall.SIGKILL)
		}
	})
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", hp.hostPid))
	t.Logf("MainPID %d (host pid %d), haproxy %d (host pid %d, %d threads): %s",
		main, wrapperHost.hostPid, h, hp.hostPid, len(tasks), f.s.ProcCmdline(h))

	stoppedAt := time.Now()
	if err := syscall.Kill(hp.hostPid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP host pid %d: %v", hp.hostPid, err)
	}
	if err := testutil.Poll(2*time.Second, 10*time.Millisecond, func() (bool, string) {
		s := procStateOf(hp.hostPid)
		return s == "T", "state " + s
	}); err != nil {
		t.Fatalf("haproxy (host pid %d) not stopped: %v", hp.hostPid, err)
	}

	st2 := f.s.WaitState(unitName, 20*time.Second, "a restart with a new MainPID after the watchdog timeout", func(m map[string]string) bool {
		p := mainPID(m)
		n, _ := strconv.Atoi(m["NRestarts"])
		return p != 0 && p != main && n >= 1 && m["ActiveState"] == "active" && m["SubState"] == "running"
	})
	t.Logf("%v after SIGSTOP: %s (MainPID before %d)", time.Since(stoppedAt).Round(time.Millisecond), FormatState(st2), main)
	if exe, ok := f.s.WaitExe(mainPID(st2), WrapperPath()); !ok {
		t.Errorf("new MainPID %d runs %q, want the wrapper", mainPID(st2), exe)
	}

	j, found := f.s.WaitJournal(unitName, "Watchdog timeout", 5*time.Second)
	if !found {
		t.Errorf("the journal has no systemd %q line:\n%s", "Watchdog timeout", j)
	}
	wrapperLine := fmt.Sprintf("watchdog: haproxy pid %d does not answer", h)
	if !strings.Contains(j, wrapperLine) {
		t.Errorf("the journal has no wrapper line %q:\n%s", wrapperLine, j)
	}
	var lines []string
	for _, l := range strings.Split(j, "\n") {
		for _, k := range []string{"atchdog", "Killing", "Main process exited", "Failed with result", "Scheduled restart", "Started", "Stopped"} {
			if strings.Contains(l, k) {
				lines = append(lines, l)
				break
			}
		}
	}
	t.Logf("journal lines:\n%s", strings.Join(lines, "\n"))
	if !strings.Contains(j, "Failed with result 'watchdog'") {
		t.Errorf("the journal has no \"Failed with result 'watchdog'\" line")
	}

	WaitHTTP(t, f.port, "config-a", 10*time.Second)

	// The hung generation and the old wrapper are gone from the unit's cgroup.
	if err := testutil.Poll(5*time.Second, 50*time.Millisecond, func() (bool, string) {
		return !hp.alive() && !wrapperHost.alive(), fmt.Sprintf("old haproxy host pid %d state %q, old wrapper host pid %d state %q",
			hp.hostPid, procStateOf(hp.hostPid), wrapperHost.hostPid, procStateOf(wrapperHost.hostPid))
	}); err != nil {
		t.Errorf("old processes still alive after the restart: %v", err)
	}
	procs, err := f.s.CgroupProcs(cg)
	if err != nil {
		t.Errorf("cgroup.procs of %s: %v", cg, err)
	}
	t.Logf("cgroup %s after the restart: host pids %v", cg, procs)
	for _, p := range procs {
		if p == hp.hostPid || p == wrapperHost.hostPid {
			t.Errorf("old process (host pid %d) still in %s: %v", p, cg, procs)
		}
	}
	if len(procs) != 2 {
		t.Errorf("cgroup %s holds %v, want the new wrapper and its haproxy", cg, procs)
	}

	// The new instance feeds the watchdog: it stays up for longer than
	// WatchdogSec (an assertion over a period, not a synchronisation).
	until := time.Now().Add(3 * time.Second)
	for time.Now().Before(until) {
		st3 := f.state()
		if mainPID(st3) != mainPID(st2) || st3["NRestarts"] != st2["NRestarts"] || st3["ActiveState"] != "active" {
			t.Fatalf("the new instance did not stay up past WatchdogSec=2: %s (after the restart: %s)", FormatState(st3), FormatState(st2))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestForkingUnitShowsLiveStatus: the forking unit grants the wrapper notify
// access (NotifyAccess=main, the main process being the one its PIDFile=
// names), so `systemctl status` shows the same live line as the notify
// unit's, refreshed after a reload.
func TestForkingUnitShowsLiveStatus(t *testing.T) {
	var kind unitKind
	for _, k := range unitKinds {
		if k.name == "forking" {
			kind = k
		}
	}
	f := setup(t, kind)
	f.s.WriteDropIn(unitName, "20-status.conf", "[Service]\nEnvironment=HAPROXY_WRAPPER_STATUS_INTERVAL=200ms\n")
	f.s.DaemonReload()
	main := mainPID(f.start())
	w := &statusWatcher{f: f}
	w.wait(10*time.Second, "a live line naming generation 1", func(s string) bool {
		return containsAll(s, "haproxy ", " pid ", " gen 1 ")
	})
	if out, err := f.s.Systemctl("reload", unitName); err != nil {
		t.Fatalf("systemctl reload: %v: %s", err, out)
	}
	w.wait(10*time.Second, "a live line naming generation 2", func(s string) bool {
		return containsAll(s, "haproxy ", " pid ", " gen 2 ")
	})
	if got := mainPID(f.state()); got != main {
		t.Errorf("MainPID %d -> %d", main, got)
	}
}
