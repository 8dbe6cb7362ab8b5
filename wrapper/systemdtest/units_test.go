package systemdtest

// Tests of the contrib/systemd units with the wrapper under a real systemd.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

const (
	unitName  = "haproxy.service"
	statsSock = "/run/hsw/admin.sock"
	// garbage is written into a config to break it; haproxy names the
	// keyword in its error ("unknown keyword 'hsw_garbage_keyword'").
	garbageKeyword = "hsw_garbage_keyword"
	garbage        = garbageKeyword + " this is not a haproxy configuration\n"
)

// unitKind is one of the three shipped units.
type unitKind struct {
	name     string
	template string
	// sync: `systemctl reload` waits for the new generation and fails when
	// the reload fails; `systemctl start` fails when haproxy fails.
	sync bool
}

var unitKinds = []unitKind{
	{name: "notify", template: "haproxy.service.in", sync: true},
	{name: "forking", template: "haproxy-forking.service.in", sync: true},
	{name: "legacy", template: "haproxy-legacy.service.in", sync: false},
}

// fixture is a booted systemd with the unit of one kind installed as
// haproxy.service and a test configuration on a free port.
type fixture struct {
	t    *testing.T
	s    *Systemd
	kind unitKind
	dir  string
	cfg  string
	port int
}

// haproxyConfig is a minimal configuration that answers 200 with body;
// extra lines go into the frontend.
func haproxyConfig(port int, body string, extra ...string) string {
	return fmt.Sprintf(`global
    stats socket %s mode 600 level admin expose-fd listeners
    stats timeout 10s

defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
    timeout http-request 5s

frontend fe_test
    bind 127.0.0.1:%d
%s    http-request return status 200 content-type text/plain string "%s"
`, statsSock, port, indent(extra), body)
}

func indent(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// testDropIn points the unit at the test configuration; the wrapper's own
// files are where the unit puts them (RuntimeDirectory=); RestartSec keeps Restart= fast and the
// timeouts keep a misbehaving wrapper from stalling the tests.
func testDropIn(cfg string) string {
	return fmt.Sprintf(`[Service]
Environment=CONFIG=%s
Environment=HAPROXY_BIN=/usr/sbin/haproxy
Environment=HAPROXY_STATS_SOCKET=%s
RestartSec=100ms
TimeoutStartSec=20s
TimeoutStopSec=15s
`, cfg, statsSock)
}

func setup(t *testing.T, kind unitKind) *fixture {
	t.Helper()
	return setupOn(t, Boot(t), kind)
}

// setupOn is setup on a systemd already booted.
func setupOn(t *testing.T, s *Systemd, kind unitKind) *fixture {
	t.Helper()
	f := &fixture{t: t, s: s, kind: kind, dir: SharedTempDir(t), port: testutil.Port(t)}
	f.cfg = filepath.Join(f.dir, "haproxy.cfg")
	writeFile(t, f.cfg, haproxyConfig(f.port, "config-a"))
	if err := os.MkdirAll(s.Path("/run/hsw"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.WriteUnit(unitName, RenderUnit(t, kind.template))
	s.WriteDropIn(unitName, "10-hsw-test.conf", testDropIn(f.cfg))
	s.DaemonReload()
	return f
}

// forEachKind runs fn as a subtest per unit kind accepted by want.
func forEachKind(t *testing.T, want func(unitKind) bool, fn func(t *testing.T, f *fixture)) {
	for _, k := range unitKinds {
		if want != nil && !want(k) {
			continue
		}
		t.Run(k.name, func(t *testing.T) {
			fn(t, setup(t, k))
		})
	}
}

func syncOnly(k unitKind) bool { return k.sync }

func (f *fixture) state() map[string]string {
	f.t.Helper()
	return f.s.State(unitName)
}

func mainPID(st map[string]string) int {
	n, _ := strconv.Atoi(st["MainPID"])
	return n
}

// start runs `systemctl start`, asserts active/running with the wrapper as
// MainPID, and that HTTP is served (at once for the sync kinds).
func (f *fixture) start() map[string]string {
	t := f.t
	t.Helper()
	t0 := time.Now()
	out, err := f.s.Systemctl("start", unitName)
	took := time.Since(t0)
	st := f.state()
	t.Logf("systemctl start took %v; %s", took.Round(time.Millisecond), FormatState(st))
	if err != nil {
		t.Fatalf("systemctl start %s failed: %v: %s\nstate: %s", unitName, err, out, FormatState(st))
	}
	if f.kind.sync {
		code, body, err := HTTPGet(f.port)
		if err != nil || code != 200 || !strings.Contains(body, "config-a") {
			t.Errorf("right after `systemctl start` returned, HTTP on port %d: status %d body %q err %v (want 200 config-a: start must return only once haproxy serves)",
				f.port, code, body, err)
		}
	}
	WaitHTTP(t, f.port, "config-a", 10*time.Second)
	st = f.state()
	if st["ActiveState"] != "active" || st["SubState"] != "running" {
		t.Fatalf("after start: want ActiveState=active SubState=running, got %s", FormatState(st))
	}
	pid := mainPID(st)
	if pid == 0 {
		t.Fatalf("after start: MainPID=0: %s", FormatState(st))
	}
	if exe, ok := f.s.WaitExe(pid, WrapperPath()); !ok {
		t.Errorf("MainPID %d runs %q (comm %q, cmdline %q), want the wrapper %s",
			pid, exe, f.s.ProcComm(pid), f.s.ProcCmdline(pid), WrapperPath())
	}
	return st
}

// haproxyChildren are the MainPID's direct children whose comm is haproxy.
func (f *fixture) haproxyChildren(main int) []int {
	var hs []int
	for _, c := range f.s.Children(main) {
		if f.s.ProcComm(c) == "haproxy" {
			hs = append(hs, c)
		}
	}
	return hs
}

func (f *fixture) showInfoPid() (string, error) {
	info, err := f.s.ShowInfo(statsSock)
	if err != nil {
		return "", err
	}
	return info["Pid"], nil
}

func (f *fixture) dumpStatus() {
	f.t.Helper()
	out, _ := f.s.Systemctl("status", "--lines=30", unitName)
	f.t.Logf("systemctl status %s:\n%s", unitName, out)
}

func TestStart(t *testing.T) {
	forEachKind(t, nil, func(t *testing.T, f *fixture) {
		st := f.start()
		main := mainPID(st)
		if f.kind.name == "notify" && st["StatusText"] == "" {
			t.Errorf("Type=notify: StatusText is empty after start (want the wrapper's STATUS=)")
		}
		if st["Result"] != "success" {
			t.Errorf("Result=%q, want success", st["Result"])
		}
		hs := f.haproxyChildren(main)
		if len(hs) == 0 {
			t.Errorf("no haproxy child of MainPID %d; descendants: %v", main, f.s.Descendants(main))
		}
		for _, h := range hs {
			t.Logf("haproxy child %d: %s", h, f.s.ProcCmdline(h))
			env, _ := f.s.ReadFile(fmt.Sprintf("/proc/%d/environ", h))
			for _, kv := range strings.Split(env, "\x00") {
				for _, bad := range []string{"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="} {
					if strings.HasPrefix(kv, bad) {
						t.Errorf("haproxy %d has %s in its environment", h, kv)
					}
				}
			}
		}
		if pid, err := f.showInfoPid(); err != nil {
			t.Errorf("show info on %s: %v", statsSock, err)
		} else {
			t.Logf("show info: Pid %s", pid)
		}
	})
}

func TestReloadUnderLoad(t *testing.T) {
	forEachKind(t, nil, func(t *testing.T, f *fixture) {
		f.reloadUnderLoad(5)
	})
}

// TestReloadUnderLoadSlowConfig reloads a configuration that takes about a
// second to load (200000 regular expressions), where a reload that returns
// before the new generation serves is easy to see.
func TestReloadUnderLoadSlowConfig(t *testing.T) {
	forEachKind(t, syncOnly, func(t *testing.T, f *fixture) {
		var b strings.Builder
		for i := 0; i < 200000; i++ {
			fmt.Fprintf(&b, "^/hsw/%d/x[0-9]+$\n", i)
		}
		list := filepath.Join(f.dir, "slow.lst")
		writeFile(t, list, b.String())
		writeFile(t, f.cfg, haproxyConfig(f.port, "config-a", "http-request deny if { path -m reg -f "+list+" }"))
		f.reloadUnderLoad(3)
	})
}

// reloadUnderLoad starts the unit and reloads it n times while a load
// generator runs: no request may fail, the MainPID stays, and for the sync
// kinds the new generation answers as soon as `systemctl reload` returns.
func (f *fixture) reloadUnderLoad(reloads int) {
	t := f.t
	{
		st := f.start()
		main := mainPID(st)
		lg := StartLoad(f.port, 8, 90*time.Second, 200000)
		stopped := false
		defer func() {
			if !stopped {
				lg.Stop()
			}
		}()
		waitRequests := func(n int64, what string) {
			t.Helper()
			target := lg.Done() + n
			if err := testutil.Poll(10*time.Second, 10*time.Millisecond, func() (bool, string) {
				done := lg.Done()
				return done >= target, fmt.Sprintf("%d requests done, want %d", done, target)
			}); err != nil {
				t.Fatalf("load generator stalled %s: %v", what, err)
			}
		}
		waitRequests(100, "before the first reload")
		for i := 1; i <= reloads; i++ {
			prev, err := f.showInfoPid()
			if err != nil {
				t.Fatalf("reload %d: show info before: %v", i, err)
			}
			t0 := time.Now()
			out, err := f.s.Systemctl("reload", unitName)
			took := time.Since(t0)
			if err != nil {
				f.dumpStatus()
				t.Fatalf("reload %d: systemctl reload failed after %v: %v: %s\nstate: %s", i, took, err, out, FormatState(f.state()))
			}
			if f.kind.sync {
				now, err := f.showInfoPid()
				switch {
				case err != nil:
					t.Errorf("reload %d: right after `systemctl reload` returned (%v): show info: %v", i, took.Round(time.Millisecond), err)
				case now == prev:
					t.Errorf("reload %d: right after `systemctl reload` returned (%v), show info still reports Pid %s (the old generation): reload must return only once the new generation serves",
						i, took.Round(time.Millisecond), now)
				default:
					t.Logf("reload %d: took %v, show info Pid %s -> %s", i, took.Round(time.Millisecond), prev, now)
				}
			} else {
				var now string
				if err := testutil.Poll(10*time.Second, 20*time.Millisecond, func() (bool, string) {
					p, err := f.showInfoPid()
					if err != nil {
						return false, err.Error()
					}
					now = p
					return p != prev, "show info Pid " + p
				}); err != nil {
					t.Fatalf("reload %d: new generation never answered on the stats socket (Pid before %s): %v", i, prev, err)
				}
				t.Logf("reload %d: systemctl reload took %v, show info Pid %s -> %s", i, took.Round(time.Millisecond), prev, now)
			}
			waitRequests(100, fmt.Sprintf("after reload %d", i))
		}
		ok, failed, errs := lg.Stop()
		stopped = true
		t.Logf("load: %d ok, %d failed", ok, failed)
		if failed != 0 {
			t.Errorf("%d of %d requests failed during %d reloads; first errors:\n%s", failed, ok+failed, reloads, strings.Join(errs, "\n"))
		}
		if ok == 0 {
			t.Errorf("no successful request")
		}
		st2 := f.state()
		t.Logf("after reloads: %s", FormatState(st2))
		if mainPID(st2) != main {
			t.Errorf("MainPID changed across reloads: %d -> %d", main, mainPID(st2))
		}
		if st2["ActiveState"] != "active" || st2["SubState"] != "running" {
			t.Errorf("after reloads: want active/running, got %s", FormatState(st2))
		}
		if hs := f.haproxyChildren(main); len(hs) != 1 {
			// Old generations may still drain for a moment.
			if err := testutil.Poll(10*time.Second, 50*time.Millisecond, func() (bool, string) {
				hs = f.haproxyChildren(main)
				return len(hs) == 1, fmt.Sprintf("haproxy children %v", hs)
			}); err != nil {
				t.Errorf("old haproxy generations not reaped: %v", err)
			}
		}
	}
}

func TestReloadBrokenConfig(t *testing.T) {
	forEachKind(t, nil, func(t *testing.T, f *fixture) {
		st := f.start()
		main := mainPID(st)
		before, err := f.showInfoPid()
		if err != nil {
			t.Fatalf("show info: %v", err)
		}
		good, err := os.ReadFile(f.cfg)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, f.cfg, garbage)
		out, err := f.s.Systemctl("reload", unitName)
		t.Logf("systemctl reload with a broken config: err=%v output=%q", err, out)
		if f.kind.sync && err == nil {
			t.Errorf("systemctl reload succeeded with a broken config; want a failure")
		}
		j, found := f.s.WaitJournal(unitName, garbageKeyword, 10*time.Second)
		if !found {
			t.Errorf("the journal of %s never showed haproxy's error about %q; journal:\n%s", unitName, garbageKeyword, j)
		}
		st2 := f.state()
		t.Logf("after the failed reload: %s", FormatState(st2))
		if st2["ActiveState"] != "active" || st2["SubState"] != "running" {
			t.Errorf("after a failed reload: want active/running, got %s", FormatState(st2))
		}
		if mainPID(st2) != main {
			t.Errorf("MainPID changed: %d -> %d", main, mainPID(st2))
		}
		if f.kind.name == "notify" {
			low := strings.ToLower(st2["StatusText"])
			if !strings.Contains(low, "fail") && !strings.Contains(low, "error") && !strings.Contains(low, "invalid") {
				t.Errorf("StatusText %q does not mention the failed reload", st2["StatusText"])
			}
		}
		code, body, err := HTTPGet(f.port)
		if err != nil || code != 200 || !strings.Contains(body, "config-a") {
			t.Errorf("old generation not serving after a failed reload: status %d body %q err %v", code, body, err)
		}
		if now, err := f.showInfoPid(); err != nil || now != before {
			t.Errorf("show info after a failed reload: Pid %q err %v, want the old generation's Pid %s", now, err, before)
		}

		// Repaired config: reload works again.
		writeFile(t, f.cfg, string(good))
		if out, err := f.s.Systemctl("reload", unitName); err != nil {
			t.Fatalf("systemctl reload after repairing the config: %v: %s", err, out)
		}
		if err := testutil.Poll(10*time.Second, 20*time.Millisecond, func() (bool, string) {
			now, err := f.showInfoPid()
			if err != nil {
				return false, err.Error()
			}
			return now != before, "show info Pid " + now
		}); err != nil {
			t.Errorf("no new generation after a reload with the repaired config: %v", err)
		}
		WaitHTTP(t, f.port, "config-a", 5*time.Second)
		if st3 := f.state(); st3["ActiveState"] != "active" || mainPID(st3) != main {
			t.Errorf("after the repaired reload: %s (MainPID before %d)", FormatState(st3), main)
		} else if f.kind.name == "notify" {
			t.Logf("StatusText after the repaired reload: %q", st3["StatusText"])
		}
	})
}

func TestStartBrokenConfig(t *testing.T) {
	forEachKind(t, syncOnly, func(t *testing.T, f *fixture) {
		writeFile(t, f.cfg, garbage)
		t0 := time.Now()
		out, err := f.s.Systemctl("start", unitName)
		took := time.Since(t0)
		t.Logf("systemctl start with a broken config took %v: err=%v output=%q", took.Round(time.Millisecond), err, out)
		if err == nil {
			t.Errorf("systemctl start succeeded with a broken config; want a failure (state %s)", FormatState(f.state()))
		}
		// Restart=always retries (RestartSec=100ms) until the start limit.
		st := f.s.WaitState(unitName, 20*time.Second, "ActiveState=failed", func(m map[string]string) bool {
			return m["ActiveState"] == "failed"
		})
		t.Logf("after the failed start: %s", FormatState(st))
		if st["Result"] == "success" {
			t.Errorf("Result=success after a failed start")
		}
		j, found := f.s.WaitJournal(unitName, garbageKeyword, 10*time.Second)
		if !found {
			t.Errorf("the journal of %s never showed haproxy's error about %q; journal:\n%s", unitName, garbageKeyword, j)
		}
		status, _ := f.s.Systemctl("status", "--lines=20", unitName)
		t.Logf("systemctl status:\n%s", status)
		if _, _, err := HTTPGet(f.port); err == nil {
			t.Errorf("something serves on port %d after a failed start", f.port)
		}
		if procs, _ := f.s.CgroupProcs(f.s.Show(unitName, "ControlGroup")["ControlGroup"]); len(procs) != 0 {
			t.Errorf("processes left in the failed unit's cgroup: %v", procs)
		}
	})
}

func TestStop(t *testing.T) {
	forEachKind(t, nil, func(t *testing.T, f *fixture) {
		st := f.start()
		main := mainPID(st)
		cg := f.s.Show(unitName, "ControlGroup")["ControlGroup"]
		procs, err := f.s.CgroupProcs(cg)
		if err != nil || len(procs) < 2 {
			t.Errorf("cgroup %s before stop: procs %v err %v (want the wrapper and haproxy)", cg, procs, err)
		}
		t.Logf("cgroup %s before stop: %v (MainPID %d)", cg, procs, main)
		t0 := time.Now()
		out, err := f.s.Systemctl("stop", unitName)
		took := time.Since(t0)
		st2 := f.state()
		t.Logf("systemctl stop took %v; %s", took.Round(time.Millisecond), FormatState(st2))
		if err != nil {
			t.Fatalf("systemctl stop: %v: %s", err, out)
		}
		if took > 10*time.Second {
			t.Errorf("stop took %v (the wrapper did not exit on SIGTERM?)", took)
		}
		if st2["ActiveState"] != "inactive" || st2["Result"] != "success" {
			t.Errorf("after stop: want ActiveState=inactive Result=success, got %s", FormatState(st2))
		}
		if st2["ExecMainStatus"] != "0" {
			t.Errorf("after stop: ExecMainStatus=%q, want 0 (the wrapper exits 0 after a requested stop)", st2["ExecMainStatus"])
		}
		if left, err := f.s.CgroupProcs(cg); err != nil || len(left) != 0 {
			t.Errorf("processes left in %s after stop: %v (err %v)", cg, left, err)
		}
		if _, _, err := HTTPGet(f.port); err == nil {
			t.Errorf("port %d still serves after stop", f.port)
		}
		j := f.s.Journal(unitName)
		if strings.Contains(j, "SIGKILL") || strings.Contains(j, "Killing process") {
			t.Errorf("stop needed SIGKILL; journal:\n%s", j)
		}
	})
}

// TestRestartAfterHAProxyKilled: a SIGKILLed serving haproxy is respawned
// by the wrapper (HAPROXY_WRAPPER_RESPAWN_LIMIT, 3 a minute) with the unit's
// main process unchanged; the kill past the limit ends the wrapper with
// haproxy's status, and systemd's Restart= brings the unit back.
func TestRestartAfterHAProxyKilled(t *testing.T) {
	forEachKind(t, nil, func(t *testing.T, f *fixture) {
		st := f.start()
		main := mainPID(st)
		// The legacy (Type=simple) unit is active before haproxy serves: a
		// kill before that is a failed start, not a crash.
		if _, ok := f.s.WaitJournal(unitName, "serving: generation 1", 20*time.Second); !ok {
			t.Fatalf("generation 1 never served:\n%s", f.s.Journal(unitName))
		}
		const limit = 3 // the default HAPROXY_WRAPPER_RESPAWN_LIMIT
		for i := 1; i <= limit+1; i++ {
			hs := f.haproxyChildren(main)
			if len(hs) == 0 {
				t.Fatalf("kill %d: no haproxy child of MainPID %d; descendants %v", i, main, f.s.Descendants(main))
			}
			for _, h := range hs {
				t.Logf("kill %d: SIGKILL haproxy %d (%s)", i, h, f.s.ProcCmdline(h))
				f.s.KillInside(h, "KILL")
			}
			if i > limit {
				break
			}
			if _, ok := f.s.WaitJournal(unitName, fmt.Sprintf("respawned: generation %d serving", i+1), 20*time.Second); !ok {
				t.Fatalf("kill %d: no respawn:\n%s", i, f.s.Journal(unitName))
			}
			if got := mainPID(f.state()); got != main {
				t.Fatalf("kill %d: MainPID %d -> %d: the unit restarted instead of the wrapper respawning haproxy", i, main, got)
			}
			WaitHTTP(t, f.port, "config-a", 10*time.Second)
		}
		st2 := f.s.WaitState(unitName, 20*time.Second, "a restarted unit with a new MainPID", func(m map[string]string) bool {
			p := mainPID(m)
			return p != 0 && p != main && m["ActiveState"] == "active" && m["SubState"] == "running"
		})
		t.Logf("after the kill past the respawn limit: %s (MainPID before %d)", FormatState(st2), main)
		// How the old main process ended (the spec wants haproxy's status,
		// i.e. not a clean exit 0, so that the crash is visible).
		j, found := f.s.WaitJournal(unitName, "Main process exited", 5*time.Second)
		if !found {
			t.Errorf("the journal has no 'Main process exited' line for the old wrapper:\n%s", j)
		}
		for _, l := range strings.Split(j, "\n") {
			if strings.Contains(l, "Main process exited") || strings.Contains(l, "Failed with result") {
				t.Logf("journal: %s", l)
				if strings.Contains(l, "status=0/SUCCESS") {
					t.Errorf("the wrapper exited 0 after haproxy was SIGKILLed; want haproxy's status (journal: %s)", l)
				}
			}
		}
		if n, _ := strconv.Atoi(st2["NRestarts"]); n < 1 {
			t.Errorf("NRestarts=%q, want >= 1", st2["NRestarts"])
		}
		if exe, ok := f.s.WaitExe(mainPID(st2), WrapperPath()); !ok {
			t.Errorf("new MainPID %d runs %q, want the wrapper", mainPID(st2), exe)
		}
		WaitHTTP(t, f.port, "config-a", 10*time.Second)
	})
}

func TestOverwriteDropIn(t *testing.T) {
	forEachKind(t, nil, func(t *testing.T, f *fixture) {
		portB := testutil.Port(t)
		for portB == f.port {
			portB = testutil.Port(t)
		}
		cfgB := filepath.Join(f.dir, "haproxy-b.cfg")
		writeFile(t, cfgB, haproxyConfig(portB, "config-b"))
		f.start()

		tmpl, err := os.ReadFile(ContribPath("overwrite.conf"))
		if err != nil {
			t.Fatal(err)
		}
		const shipped = "/etc/foobar/haproxy.cfg"
		if !strings.Contains(string(tmpl), "Environment=CONFIG="+shipped) {
			t.Fatalf("contrib/systemd/overwrite.conf lacks Environment=CONFIG=%s:\n%s", shipped, tmpl)
		}
		f.s.WriteDropIn(unitName, "overwrite.conf", strings.ReplaceAll(string(tmpl), shipped, cfgB))
		f.s.DaemonReload()
		p := f.s.Show(unitName, "DropInPaths", "Environment")
		t.Logf("after daemon-reload: %s", FormatState(p))
		if !strings.Contains(p["DropInPaths"], "/etc/systemd/system/"+unitName+".d/overwrite.conf") {
			t.Errorf("DropInPaths %q does not list overwrite.conf", p["DropInPaths"])
		}
		if !strings.Contains(p["Environment"], "CONFIG="+cfgB) {
			t.Errorf("Environment %q lacks CONFIG=%s", p["Environment"], cfgB)
		}

		out, err := f.s.Systemctl("restart", unitName)
		st := f.state()
		t.Logf("after restart: %s", FormatState(st))
		if err != nil {
			t.Fatalf("systemctl restart: %v: %s", err, out)
		}
		if f.kind.sync {
			code, body, err := HTTPGet(portB)
			if err != nil || code != 200 || !strings.Contains(body, "config-b") {
				t.Errorf("right after restart, port %d: status %d body %q err %v, want 200 config-b", portB, code, body, err)
			}
		}
		WaitHTTP(t, portB, "config-b", 10*time.Second)
		if err := testutil.Poll(5*time.Second, 50*time.Millisecond, func() (bool, string) {
			code, body, err := HTTPGet(f.port)
			return err != nil, fmt.Sprintf("status %d body %q", code, body)
		}); err != nil {
			t.Errorf("the first config (port %d) is still served after the restart: %v", f.port, err)
		}
		if st["ActiveState"] != "active" || st["SubState"] != "running" {
			t.Errorf("after restart: want active/running, got %s", FormatState(st))
		}
		for _, h := range f.haproxyChildren(mainPID(st)) {
			if cmd := f.s.ProcCmdline(h); !strings.Contains(cmd, cfgB) {
				t.Errorf("haproxy %d runs %q, want -f %s", h, cmd, cfgB)
			}
		}
	})
}

// systemdVersion is the booted systemd's version number.
func systemdVersion(t *testing.T, s *Systemd) int {
	t.Helper()
	out, err := s.Systemctl("--version")
	f := strings.Fields(out)
	if err != nil || len(f) < 2 {
		t.Fatalf("systemctl --version: %v %q", err, out)
	}
	v, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("systemctl --version: %q", out)
	}
	return v
}

// TestNotifyReloadUnit: Type=notify-reload (systemd >= 253: make matrix runs
// it under 257 and 262). systemd sends SIGUSR2 and waits for the wrapper's
// RELOADING=1 ... READY=1, so a good reload serves when systemctl reload
// returns; a broken one keeps the old configuration serving, and
// ExecReloadPost= (systemd >= 259) makes systemctl reload fail with it,
// while 253-258 ignore that line and return 0 (what each did is logged).
func TestNotifyReloadUnit(t *testing.T) {
	s := Boot(t)
	v := systemdVersion(t, s)
	if v < 253 {
		t.Skipf("systemd %d: Type=notify-reload needs 253 or later (make matrix runs this under 257 and 262)", v)
	}
	k := unitKind{name: "notify-reload", template: "haproxy-notify-reload.service.in", sync: true}
	f := setupOn(t, s, k)
	main := mainPID(f.start())
	writeFile(t, f.cfg, haproxyConfig(f.port, "config-b"))
	if out, err := s.Systemctl("reload", unitName); err != nil {
		t.Fatalf("systemctl reload: %v: %s", err, out)
	}
	if code, body, err := HTTPGet(f.port); err != nil || code != 200 || body != "config-b" {
		t.Errorf("right after systemctl reload returned: %d %q %v, want config-b", code, body, err)
	}
	writeFile(t, f.cfg, haproxyConfig(f.port, "config-c")+garbage)
	out, err := s.Systemctl("reload", unitName)
	failed := err != nil
	t.Logf("systemd %d: systemctl reload of a broken configuration: failed=%v (%v) %s", v, failed, err, out)
	if v >= 259 && !failed {
		t.Errorf("systemd %d: systemctl reload returned 0 for a failed reload: ExecReloadPost= should have failed it", v)
	}
	if code, body, err := HTTPGet(f.port); err != nil || code != 200 || body != "config-b" {
		t.Errorf("after the broken reload: %d %q %v, want config-b still serving", code, body, err)
	}
	last, err := s.Exec("env", "HAPROXY_WRAPPER_CONTROL_SOCKET=/run/haproxy-systemd-wrapper/haproxy/control.sock", WrapperPath(), "last-reload")
	if err == nil || !strings.Contains(last, garbageKeyword) {
		t.Errorf("last-reload after the broken reload: %v %q, want a failure naming %s", err, last, garbageKeyword)
	}
	if st := f.state(); mainPID(st) != main || st["ActiveState"] != "active" {
		t.Errorf("after the reloads: %s", FormatState(st))
	}
}
