package systemdtest

// The haproxy@.service template and the sandboxed units under a real
// systemd: instances that never share state, and Debian's stock
// configuration (chroot, user haproxy, logs to /dev/log) under the
// hardening.

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// devLogBind replaces, in a test drop-in, the units' BindReadOnlyPaths= for
// a chrooted haproxy's /dev/log. On a booted host /dev/log is journald's
// symlink to /run/systemd/journal/dev-log and the units' own line makes it
// reachable in the chroot. A test boot shares the host's /dev, which has no
// /dev/log (the units' line is then skipped by its "-", Debian's fails, and
// systemd keeps the first line for one destination), so the line is reset
// and made from the symlink's target.
const devLogBind = "BindReadOnlyPaths=\nBindReadOnlyPaths=/run/systemd/journal/dev-log:/var/lib/haproxy/dev/log\n"

// instanceConfig is a configuration for one template instance: its own stats
// socket (for -x) and port, answering body.
func instanceConfig(name string, port int, body string) string {
	return strings.Replace(haproxyConfig(port, body), statsSock, "/run/hsw/"+name+".sock", 1)
}

// instanceUnit is the unit of the haproxy@ instance n.
func instanceUnit(n string) string { return "haproxy@" + n + ".service" }

// startInstances installs haproxy@.service with a test drop-in (CONFIG in
// the returned folder, a stats socket of its own per instance) and starts
// one instance per name, each on its own port answering NAME-1; it checks
// each has its own private folder, control socket and pid file and returns
// the ports and the wrappers' pids.
func startInstances(t *testing.T, s *Systemd, names []string) (dir string, port, main map[string]int) {
	t.Helper()
	dir = SharedTempDir(t)
	port, main = map[string]int{}, map[string]int{}
	for _, n := range names {
		port[n] = testutil.Port(t)
		writeFile(t, filepath.Join(dir, n+".cfg"), instanceConfig(n, port[n], n+"-1"))
	}
	if err := os.MkdirAll(s.Path("/run/hsw"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.WriteUnit("haproxy@.service", RenderUnit(t, "haproxy@.service.in"))
	s.WriteDropIn("haproxy@.service", "10-hsw-test.conf", fmt.Sprintf(`[Service]
Environment=CONFIG=%s/%%i.cfg
Environment=HAPROXY_BIN=/usr/sbin/haproxy
Environment=HAPROXY_STATS_SOCKET=/run/hsw/%%i.sock
RestartSec=100ms
TimeoutStartSec=20s
TimeoutStopSec=15s
`, dir))
	s.DaemonReload()
	for _, n := range names {
		s.JournalOnFailure(t, instanceUnit(n))
	}
	for _, n := range names {
		if out, err := s.Systemctl("start", instanceUnit(n)); err != nil {
			t.Fatalf("systemctl start %s: %v: %s\nstate: %s", instanceUnit(n), err, out, FormatState(s.State(instanceUnit(n))))
		}
		main[n] = mainPID(s.State(instanceUnit(n)))
		WaitHTTP(t, port[n], n+"-1", 5*time.Second)
		// Each instance's own files, where the template puts them.
		for _, p := range []string{"/run/haproxy-systemd-wrapper/haproxy@" + n + "/control.sock", "/run/haproxy-" + n + ".pid"} {
			if _, err := os.Lstat(s.Path(p)); err != nil {
				t.Errorf("%s: %v", instanceUnit(n), err)
			}
		}
	}
	if len(names) == 2 && (main[names[0]] == main[names[1]] || main[names[0]] == 0) {
		t.Fatalf("MainPIDs %v: want two wrappers", main)
	}
	return dir, port, main
}

// TestTemplateInstancesUnderLoad starts two haproxy@ instances, reloads each
// on its own under load, then stops one: every instance keeps its own
// private folder, control socket and pid file; a reload of one never touches
// the other; no request fails.
func TestTemplateInstancesUnderLoad(t *testing.T) {
	s := Boot(t)
	names := []string{"alpha", "beta"}
	dir, port, main := startInstances(t, s, names)
	unit := instanceUnit

	loads := map[string]*LoadGen{}
	for _, n := range names {
		loads[n] = StartLoad(port[n], 4, 90*time.Second, 200000)
	}
	stopped := false
	defer func() {
		if !stopped {
			for _, l := range loads {
				l.Stop()
			}
		}
	}()
	waitLoad := func(n string, what string) {
		t.Helper()
		target := loads[n].Done() + 50
		if err := testutil.Poll(10*time.Second, 10*time.Millisecond, func() (bool, string) {
			return loads[n].Done() >= target, fmt.Sprintf("%d requests", loads[n].Done())
		}); err != nil {
			t.Fatalf("load on %s stalled %s: %v", n, what, err)
		}
	}
	for _, n := range names {
		waitLoad(n, "before the reloads")
	}
	for round := 2; round <= 4; round++ {
		for i, n := range names {
			other := names[1-i]
			_, otherBody, _ := HTTPGet(port[other])
			writeFile(t, filepath.Join(dir, n+".cfg"), instanceConfig(n, port[n], fmt.Sprintf("%s-%d", n, round)))
			if out, err := s.Systemctl("reload", unit(n)); err != nil {
				t.Fatalf("round %d: systemctl reload %s: %v: %s", round, unit(n), err, out)
			}
			// The reload returns once the new generation serves.
			if code, body, err := HTTPGet(port[n]); err != nil || code != 200 || body != fmt.Sprintf("%s-%d", n, round) {
				t.Errorf("round %d: right after reloading %s: %d %q %v, want %s-%d", round, n, code, body, err, n, round)
			}
			if code, body, err := HTTPGet(port[other]); err != nil || code != 200 || body != otherBody {
				t.Errorf("round %d: reloading %s changed %s: %d %q %v, want %q", round, n, other, code, body, err, otherBody)
			}
			for _, m := range names {
				if got := mainPID(s.State(unit(m))); got != main[m] {
					t.Errorf("round %d: %s MainPID %d -> %d", round, unit(m), main[m], got)
				}
			}
			waitLoad(n, fmt.Sprintf("after reload round %d", round))
		}
	}
	for _, n := range names {
		ok, failed, errs := loads[n].Stop()
		t.Logf("load on %s: %d ok, %d failed", n, ok, failed)
		if failed != 0 || ok == 0 {
			t.Errorf("%s: %d of %d requests failed over its reloads; first errors:\n%s", n, failed, ok+failed, strings.Join(errs, "\n"))
		}
	}
	stopped = true

	if out, err := s.Systemctl("stop", unit("alpha")); err != nil {
		t.Fatalf("systemctl stop %s: %v: %s", unit("alpha"), err, out)
	}
	if st := s.State(unit("alpha")); st["ActiveState"] != "inactive" {
		t.Errorf("%s after stop: %s", unit("alpha"), FormatState(st))
	}
	if _, err := os.Lstat(s.Path("/run/haproxy-systemd-wrapper/haproxy@alpha")); !os.IsNotExist(err) {
		t.Errorf("alpha's private folder after its stop: %v (want it removed)", err)
	}
	if _, _, err := HTTPGet(port["alpha"]); err == nil {
		t.Errorf("alpha still answers after its stop")
	}
	if code, body, err := HTTPGet(port["beta"]); err != nil || code != 200 || body != "beta-4" {
		t.Errorf("beta after alpha's stop: %d %q %v", code, body, err)
	}
	if st := s.State(unit("beta")); st["ActiveState"] != "active" || mainPID(st) != main["beta"] {
		t.Errorf("beta after alpha's stop: %s", FormatState(st))
	}
	if out, err := s.Systemctl("stop", unit("beta")); err != nil {
		t.Fatalf("systemctl stop %s: %v: %s", unit("beta"), err, out)
	}
}

// TestDebianStockConfigHardened runs Debian's own /etc/haproxy/haproxy.cfg
// (chroot /var/lib/haproxy, user haproxy, "daemon", logs to /dev/log; a
// frontend added, since the stock file has none and haproxy refuses to start
// without one) under the sandboxed haproxy.service: it starts, serves,
// reloads, logs its own lines to the journal through the chroot, and stops.
func TestDebianStockConfigHardened(t *testing.T) {
	stock, err := os.ReadFile("/etc/haproxy/haproxy.cfg")
	if err != nil {
		t.Fatalf("Debian's stock configuration: %v (make deps installs haproxy)", err)
	}
	if !strings.Contains(string(stock), "chroot /var/lib/haproxy") {
		t.Fatalf("/etc/haproxy/haproxy.cfg is not Debian's stock file (no chroot line):\n%s", stock)
	}
	s := Boot(t)
	dir := SharedTempDir(t)
	port := testutil.Port(t)
	cfg := filepath.Join(dir, "haproxy.cfg")
	frontend := func(body string) string {
		return fmt.Sprintf(`%s
frontend hsw_stock
    bind 127.0.0.1:%d
    http-request return status 200 content-type text/plain string "%s"
`, stock, port, body)
	}
	writeFile(t, cfg, frontend("stock-1"))
	// /run/haproxy comes from Debian's tmpfiles.d entry on a real boot.
	if err := os.MkdirAll(s.Path("/run/haproxy"), 0o2775); err != nil {
		t.Fatal(err)
	}
	s.WriteUnit(unitName, RenderUnit(t, "haproxy.service.in"))
	s.WriteDropIn(unitName, "10-hsw-test.conf", fmt.Sprintf(`[Service]
Environment=CONFIG=%s
Environment=HAPROXY_BIN=/usr/sbin/haproxy
%sRestartSec=100ms
TimeoutStartSec=20s
TimeoutStopSec=15s
`, cfg, devLogBind))
	s.DaemonReload()
	s.JournalOnFailure(t, unitName)
	if out, err := s.Systemctl("start", unitName); err != nil {
		t.Fatalf("systemctl start: %v: %s\nstate: %s", err, out, FormatState(s.State(unitName)))
	}
	main := mainPID(s.State(unitName))
	WaitHTTP(t, port, "stock-1", 5*time.Second)
	// haproxy's own request log line ("option httplog" in the stock
	// defaults), sent from inside its chroot to /dev/log: it never goes to
	// stderr.
	if j, ok := s.WaitJournal(unitName, "hsw_stock hsw_stock/<NOSRV>", 10*time.Second); !ok {
		t.Errorf("haproxy's request log line (\"hsw_stock hsw_stock/<NOSRV>\") never reached the journal:\n%s", j)
	}
	writeFile(t, cfg, frontend("stock-2"))
	if out, err := s.Systemctl("reload", unitName); err != nil {
		t.Fatalf("systemctl reload: %v: %s", err, out)
	}
	if code, body, err := HTTPGet(port); err != nil || code != 200 || body != "stock-2" {
		t.Errorf("right after the reload: %d %q %v, want stock-2", code, body, err)
	}
	if got := mainPID(s.State(unitName)); got != main {
		t.Errorf("MainPID %d -> %d over the reload", main, got)
	}
	// The serving haproxy dropped to the haproxy user.
	hu, err := user.Lookup("haproxy")
	if err != nil {
		t.Fatalf("the haproxy user: %v", err)
	}
	for _, p := range s.Descendants(main) {
		if !strings.Contains(s.ProcCmdline(p), "haproxy -f") {
			continue
		}
		st, _ := s.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if !strings.Contains(st, "\nUid:\t"+hu.Uid+"\t") {
			t.Errorf("haproxy pid %d does not run as the haproxy user:\n%s", p, st)
		}
	}
	if out, err := s.Systemctl("stop", unitName); err != nil {
		t.Fatalf("systemctl stop: %v: %s", err, out)
	}
	if st := s.State(unitName); st["ActiveState"] != "inactive" || st["Result"] != "success" {
		t.Errorf("after stop: %s", FormatState(st))
	}
}

// TestReloadOnConfigChangePath: with haproxy-reload.path enabled, an edit of
// the configuration makes the new one serve, without a manual reload; a
// broken edit leaves the old one serving, haproxy-reload.service fails and
// haproxy.service's status says why.
func TestReloadOnConfigChangePath(t *testing.T) {
	f := setup(t, notifyKind(t))
	s := f.s
	main := f.startWithReloadPath()

	// An edit, written as editors do (a new file renamed over the old one).
	replace := func(content string) {
		t.Helper()
		tmp := f.cfg + ".new"
		writeFile(t, tmp, content)
		if err := os.Rename(tmp, f.cfg); err != nil {
			t.Fatal(err)
		}
	}
	replace(haproxyConfig(f.port, "config-b"))
	WaitHTTP(t, f.port, "config-b", 15*time.Second)
	if got := mainPID(f.state()); got != main {
		t.Errorf("MainPID %d -> %d: the edit restarted instead of reloading", main, got)
	}

	// A broken edit: the reload fails, config-b keeps serving. It is made
	// once the first edit's haproxy-reload.service ended: a change while
	// it runs does not start it again (the path unit is running).
	s.WaitState("haproxy-reload.service", 15*time.Second, "the first edit's reload to end", func(m map[string]string) bool {
		return m["ActiveState"] == "inactive" || m["ActiveState"] == "failed"
	})
	before := s.Show("haproxy-reload.service", "InvocationID")["InvocationID"]
	replace(haproxyConfig(f.port, "config-c") + garbage)
	st := s.WaitState("haproxy-reload.service", 15*time.Second, "the reload of the broken edit to fail", func(m map[string]string) bool {
		return m["Result"] == "exit-code"
	})
	if s.Show("haproxy-reload.service", "InvocationID")["InvocationID"] == before {
		t.Errorf("haproxy-reload.service did not run again for the broken edit: %s", FormatState(st))
	}
	if code, body, err := HTTPGet(f.port); err != nil || code != 200 || body != "config-b" {
		t.Errorf("after the broken edit: %d %q %v, want config-b still serving", code, body, err)
	}
	text := f.state()["StatusText"]
	if !strings.Contains(strings.ToLower(text), "failed") || !strings.Contains(text, garbageKeyword) {
		t.Errorf("haproxy.service StatusText %q does not say why the reload failed (want %q)", text, garbageKeyword)
	}
}
