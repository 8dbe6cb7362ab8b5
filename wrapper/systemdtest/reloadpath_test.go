package systemdtest

// Reload on configuration change (haproxy-reload.path and .service) under
// bursts of edits, slow reloads and broken edits.

import (
	"haproxy-systemd-wrapper/wrapper/internal/testutil"

	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/status"
)

// startWithReloadPath installs haproxy-reload.path (watching the fixture's
// configuration) and .service, starts haproxy.service and the path unit,
// and returns the wrapper's pid.
func (f *fixture) startWithReloadPath() int {
	t, s := f.t, f.s
	t.Helper()
	s.WriteUnit("haproxy-reload.path", RenderUnit(t, "haproxy-reload.path.in"))
	s.WriteUnit("haproxy-reload.service", RenderUnit(t, "haproxy-reload.service.in"))
	s.WriteDropIn("haproxy-reload.path", "10-hsw-test.conf", fmt.Sprintf("[Path]\nPathChanged=\nPathChanged=%s\n", f.cfg))
	s.DaemonReload()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("journal of haproxy-reload.service:\n%s", s.Journal("haproxy-reload.service"))
			t.Logf("journal of haproxy-reload.path:\n%s", s.Journal("haproxy-reload.path"))
		}
	})
	main := mainPID(f.start())
	if out, err := s.Systemctl("start", "haproxy-reload.path"); err != nil {
		t.Fatalf("systemctl start haproxy-reload.path: %v: %s", err, out)
	}
	s.WaitState("haproxy-reload.path", 10*time.Second, "the path unit waiting", func(m map[string]string) bool {
		return m["ActiveState"] == "active"
	})
	return main
}

// editStyles are the ways tools change a configuration: written in place
// (truncated and rewritten), sed -i (a temporary file renamed over it), and
// an editor's temporary file renamed over it.
var editStyles = []struct {
	name  string
	write func(t *testing.T, path, content, old, new string)
}{
	{"in place", func(t *testing.T, path, content, _, _ string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}},
	{"sed -i", func(t *testing.T, path, _, old, new string) {
		t.Helper()
		if out, err := exec.Command("sed", "-i", "s/"+old+"/"+new+"/", path).CombinedOutput(); err != nil {
			t.Fatalf("sed -i: %v: %s", err, out)
		}
	}},
	{"renamed over", func(t *testing.T, path, content, _, _ string) {
		t.Helper()
		tmp := filepath.Join(filepath.Dir(path), ".haproxy.cfg.swp")
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}},
}

// burstDuration is how long TestReloadOnConfigChangeBursts keeps editing:
// HSW_PATH_BURST_DURATION (the minute: 1m), 20 s by default to keep
// make test within its budget.
func burstDuration(t *testing.T) time.Duration {
	v := os.Getenv("HSW_PATH_BURST_DURATION")
	if v == "" {
		return 20 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("HSW_PATH_BURST_DURATION=%q: give a duration such as 1m", v)
	}
	return d
}

// TestReloadOnConfigChangeBursts: with haproxy-reload.path enabled, bursts
// of 10 edits 30 ms apart (in place, sed -i, renamed over, in turn),
// repeated for burstDuration, each end with the burst's last edit serving;
// the path unit never gives up (systemd's start and trigger limits), the
// wrapper is never restarted. Then an edit that lands while a
// 10,000-backend configuration loads is applied by a following reload, and
// a broken edit fails haproxy-reload.service visibly (its result, haproxy's
// reason in haproxy.service's status) while the watch goes on and the fix
// is applied.
func TestReloadOnConfigChangeBursts(t *testing.T) {
	f := setup(t, notifyKind(t))
	s := f.s
	main := f.startWithReloadPath()

	// Every body is unique, so the served body says which edit serves.
	body := "config-a"
	edit := func(style int, next string, extra ...string) {
		t.Helper()
		editStyles[style%len(editStyles)].write(t, f.cfg, haproxyConfig(f.port, next, extra...), body, next)
		body = next
	}
	until := time.Now().Add(burstDuration(t))
	var bursts, edits int
	var worst time.Duration
	for round := 1; time.Now().Before(until); round++ {
		for i := 0; i < 10; i++ {
			edit(round+i, fmt.Sprintf("burst-%d-edit-%d", round, i))
			edits++
			if i < 9 {
				time.Sleep(30 * time.Millisecond) // the edits' pace, not a wait for anything
			}
		}
		t0 := time.Now()
		err := testutil.Poll(30*time.Second, 20*time.Millisecond, func() (bool, string) {
			code, got, err := HTTPGet(f.port)
			return err == nil && code == 200 && got == body, fmt.Sprintf("%d %q %v", code, got, err)
		})
		if err != nil {
			st := s.Show("haproxy-reload.path", "ActiveState", "SubState", "Result")
			t.Fatalf("burst %d: its last edit (%s, %s) never served: %v; haproxy-reload.path: %s", round, body, editStyles[(round+9)%len(editStyles)].name, err, FormatState(st))
		}
		worst = max(worst, time.Since(t0))
		bursts++
		// The next burst starts the path unit and the oneshot afresh, as
		// edits minutes apart do: one start of the oneshot per burst.
		f.waitReloadPathIdle(fmt.Sprintf("after burst %d", round))
	}
	path := s.Show("haproxy-reload.path", "ActiveState", "SubState", "Result")
	oneshot := s.Show("haproxy-reload.service", "Result", "NRestarts")
	t.Logf("%d bursts (%d edits) in %s: each one's last edit served, at worst %s after it; haproxy-reload.path %s; haproxy-reload.service %s",
		bursts, edits, burstDuration(t), worst.Round(time.Millisecond), FormatState(path), FormatState(oneshot))
	if path["ActiveState"] != "active" || path["Result"] != "success" {
		t.Errorf("haproxy-reload.path after the bursts: %s (want active, success: it gave up)", FormatState(path))
	}
	if bursts < 3 {
		t.Errorf("only %d bursts in %s", bursts, burstDuration(t))
	}
	if got := mainPID(f.state()); got != main {
		t.Errorf("MainPID %d -> %d: the edits restarted haproxy.service", main, got)
	}

	t.Run("edit during a slow reload", func(t *testing.T) { f.editDuringSlowReload(t, &body) })
	t.Run("broken then fixed", func(t *testing.T) { f.brokenThenFixed(t, &body) })
	if got := mainPID(f.state()); got != main {
		t.Errorf("MainPID %d -> %d at the end", main, got)
	}
}

// waitReloadPathIdle waits until haproxy-reload.service has ended and
// haproxy-reload.path watches again.
func (f *fixture) waitReloadPathIdle(when string) {
	f.t.Helper()
	f.s.WaitState("haproxy-reload.service", 60*time.Second, "haproxy-reload.service to end "+when, func(m map[string]string) bool {
		return m["ActiveState"] == "inactive" || m["ActiveState"] == "failed"
	})
	f.s.WaitState("haproxy-reload.path", 10*time.Second, "haproxy-reload.path to watch again "+when, func(m map[string]string) bool {
		return m["ActiveState"] == "active" && m["SubState"] == "waiting" || m["ActiveState"] == "failed"
	})
}

// backends is a configuration's extra part: n backends, for a slow load.
func backends(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "backend hsw_b%d\n    server s%d 127.0.0.1:%d\n", i, i, 10000+i%1000)
	}
	return b.String()
}

// wrapperStatus asks the wrapper of haproxy.service for its status, over
// its control socket in the unit's runtime folder.
func (f *fixture) wrapperStatus() (status.Report, error) {
	var r status.Report
	ans, err := control.RequestText(f.s.Path("/run/haproxy-systemd-wrapper/haproxy/control.sock"), "status json", 5*time.Second)
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal([]byte(ans), &r)
}

// startingPID is the pid of the generation that is starting, 0 if none.
func startingPID(r status.Report) int {
	for _, g := range r.Generations {
		if g.State == "starting" {
			return g.PID
		}
	}
	return 0
}

// holdsOpen tells whether process pid (inside) has path open.
func (f *fixture) holdsOpen(pid int, path string) bool {
	fds, _ := os.ReadDir(f.s.Path(fmt.Sprintf("/proc/%d/fd", pid)))
	for _, fd := range fds {
		if l, _ := os.Readlink(f.s.Path(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))); l == path {
			return true
		}
	}
	return false
}

// hasRead tells whether process pid (inside) has read the configuration
// path of size bytes or is reading it: the file is open in it (haproxy 2.6
// reads it line by line as it parses), or it read at least that many bytes
// (haproxy 3.0 reads it whole into memory first, then parses).
func (f *fixture) hasRead(pid int, path string, size int) bool {
	if f.holdsOpen(pid, path) {
		return true
	}
	io, err := f.s.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(io, "\n") {
		if v, ok := strings.CutPrefix(l, "rchar: "); ok {
			n, err := strconv.Atoi(v)
			return err == nil && n >= size
		}
	}
	return false
}

// editDuringSlowReload: a 10,000-backend configuration is written; once
// the haproxy it started has read it, while that haproxy still starts, a
// second edit is renamed over it. haproxy loads the first; the path unit does not
// watch while the reload it started runs: the reload command sees the
// change and reloads again, and the second edit serves.
func (f *fixture) editDuringSlowReload(t *testing.T, body *string) {
	s, slow := f.s, backends(10000)
	for try := 1; ; try++ {
		f.waitReloadPathIdle(fmt.Sprintf("before slow edit %d", try))
		first, second := fmt.Sprintf("slow-%d-a", try), fmt.Sprintf("slow-%d-b", try)
		content := haproxyConfig(f.port, first) + slow
		writeFile(t, f.cfg, content)
		var pid int
		if err := testutil.Poll(20*time.Second, time.Millisecond, func() (bool, string) {
			r, err := f.wrapperStatus()
			pid = startingPID(r)
			return err == nil && pid != 0 && f.hasRead(pid, f.cfg, len(content)), fmt.Sprintf("%+v %v", r.Generations, err)
		}); err != nil {
			t.Fatalf("no haproxy started reading the slow edit: %v", err)
		}
		editStyles[2].write(t, f.cfg, haproxyConfig(f.port, second)+slow, "", "") // renamed over
		r, err := f.wrapperStatus()
		landed := err == nil && startingPID(r) == pid // that haproxy still starts
		*body = second
		WaitHTTP(t, f.port, second, 30*time.Second)
		if !landed {
			if try == 3 {
				t.Fatalf("in 3 tries the second edit never landed while haproxy loaded the slow configuration")
			}
			t.Logf("try %d: haproxy %d had started before the second edit; again", try, pid)
			continue
		}
		j, ok := s.WaitJournal(unitName, "the configuration changed during the reload: reloading again", 10*time.Second)
		if !ok {
			t.Errorf("haproxy.service's journal does not show the reload asked again:\n%s", j)
		}
		t.Logf("try %d: the edit renamed over the file after haproxy (pid %d) read it, while it loaded 10,000 backends, serves", try, pid)
		return
	}
}

// brokenThenFixed: a broken edit fails haproxy-reload.service (Result
// exit-code) with haproxy's reason in haproxy.service's status, the old
// configuration serving; the path unit goes on watching and the fix serves.
func (f *fixture) brokenThenFixed(t *testing.T, body *string) {
	s := f.s
	f.waitReloadPathIdle("before the broken edit")
	before := s.Show("haproxy-reload.service", "InvocationID")["InvocationID"]
	writeFile(t, f.cfg, haproxyConfig(f.port, "broken")+garbage)
	st := s.WaitState("haproxy-reload.service", 30*time.Second, "the reload of the broken edit to fail", func(m map[string]string) bool {
		return m["Result"] == "exit-code"
	})
	if s.Show("haproxy-reload.service", "InvocationID")["InvocationID"] == before {
		t.Errorf("haproxy-reload.service did not run for the broken edit: %s", FormatState(st))
	}
	if code, got, err := HTTPGet(f.port); err != nil || code != 200 || got != *body {
		t.Errorf("after the broken edit: %d %q %v, want %q still serving", code, got, err, *body)
	}
	if text := f.state()["StatusText"]; !strings.Contains(strings.ToLower(text), "failed") || !strings.Contains(text, garbageKeyword) {
		t.Errorf("haproxy.service StatusText %q does not say why the reload failed (want %q)", text, garbageKeyword)
	}
	out, _ := s.Systemctl("status", "--lines=0", "haproxy-reload.service")
	if !strings.Contains(out, "failed") {
		t.Errorf("systemctl status haproxy-reload.service does not show the failure:\n%s", out)
	}
	if p := s.Show("haproxy-reload.path", "ActiveState"); p["ActiveState"] != "active" {
		t.Errorf("haproxy-reload.path after a failed reload: %s (want active: still watching)", FormatState(p))
	}
	writeFile(t, f.cfg, haproxyConfig(f.port, "fixed"))
	*body = "fixed"
	WaitHTTP(t, f.port, "fixed", 30*time.Second)
	s.WaitState("haproxy-reload.service", 10*time.Second, "the reload of the fix to succeed", func(m map[string]string) bool {
		return m["Result"] == "success"
	})
}
