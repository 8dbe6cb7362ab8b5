package main

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

func TestLiveStatusOverNotifyAndJSON(t *testing.T) {
	notify := filepath.Join(testutil.ShortDir(t), "notify")
	nc := testutil.ListenNotify(t, notify)
	w := startRealOpts(t, true, wrapperOpts{env: []string{"NOTIFY_SOCKET=" + notify, "HAPROXY_WRAPPER_STATUS_INTERVAL=100ms"}})
	dir, addr := w.dir, w.addr
	conns := testutil.HoldConns(t, addr, 20)
	got := testutil.ReadDatagramWith(t, nc, "STATUS=haproxy 2.6")
	for !strings.Contains(got, " · 20 conns") {
		got = testutil.ReadDatagramWith(t, nc, "STATUS=haproxy 2.6")
	}
	first := w.status()
	if first.CurrConns != 20 || first.Generation != 1 || !first.Serving {
		t.Fatalf("status --json: conns %d gen %d serving %v, want 20, 1, true", first.CurrConns, first.Generation, first.Serving)
	}
	if ans, err := control.RequestText(w.ctlPath, "reload", 30*time.Second); err != nil || !strings.HasPrefix(ans, "ok") {
		t.Fatalf("reload: %q %v", ans, err)
	}
	for !strings.Contains(got, "gen 2 · 0 conns") || !strings.Contains(got, "1 old gen draining (20 conns)") || !strings.Contains(got, "reloaded") {
		got = testutil.ReadDatagramWith(t, nc, "STATUS=haproxy 2.6")
	}
	t.Logf("STATUS seen: %s", strings.TrimSpace(got))
	r := w.status()
	if r.Generation != 2 || r.Draining != 1 || r.DrainingConns != 20 || r.LastReload == nil || !r.LastReload.OK || len(r.History) != 1 {
		t.Fatalf("status after reload: %+v", r)
	}
	var raw map[string]any
	ans, _ := control.RequestText(w.ctlPath, "status json", 10*time.Second)
	if err := json.Unmarshal([]byte(ans), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"wrapper_version", "wrapper_pid", "haproxy_version", "serving", "pid", "generation", "current_connections",
		"connection_rate", "draining_generations", "draining_connections", "generations", "reloads", "last_reload", "reload_history"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("status --json lacks %q", k)
		}
	}
	// The command line tool, as a person runs it.
	cmd := exec.Command(w.bin, "status")
	cmd.Env = baseEnv(dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "generation 1 pid") || !strings.Contains(string(out), "draining, 20 conns") {
		t.Fatalf("status command: %v\n%s", err, out)
	}
	for _, c := range conns {
		c.Close()
	}
	testutil.WaitFor(t, 15*time.Second, "the old generation to drain", func() bool { return w.status().Draining == 0 })
}

func countWatchdog(t *testing.T, c *net.UnixConn, within time.Duration) int {
	t.Helper()
	n := 0
	deadline := time.Now().Add(within)
	b := make([]byte, 4096)
	for {
		_ = c.SetReadDeadline(deadline)
		m, err := c.Read(b)
		if err != nil {
			return n
		}
		if strings.Contains(string(b[:m]), "WATCHDOG=1") {
			n++
		}
	}
}

func TestWatchdogFollowsHAProxy(t *testing.T) {
	notify := filepath.Join(testutil.ShortDir(t), "notify")
	nc := testutil.ListenNotify(t, notify)
	// 400ms watchdog: a ping every 200ms while haproxy answers.
	w := startRealOpts(t, false, wrapperOpts{env: []string{"NOTIFY_SOCKET=" + notify, "WATCHDOG_USEC=400000"}})
	testutil.ReadDatagramWith(t, nc, "WATCHDOG=1")
	testutil.ReadDatagramWith(t, nc, "WATCHDOG=1")
	hp := w.status().PID
	if err := syscall.Kill(hp, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(hp, syscall.SIGCONT)
	w.waitLog("watchdog: haproxy pid", 10*time.Second)
	// From now on: no ping while haproxy stays stopped (three intervals).
	if n := countWatchdog(t, nc, 600*time.Millisecond); n > 1 { // one may have been in flight
		t.Fatalf("%d watchdog pings while haproxy was stopped", n)
	}
	if n := countWatchdog(t, nc, 600*time.Millisecond); n != 0 {
		t.Fatalf("%d watchdog pings while haproxy was stopped", n)
	}
	if err := syscall.Kill(hp, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testutil.ReadDatagramWith(t, nc, "WATCHDOG=1")
	w.waitLog("watchdog: haproxy answers again", 10*time.Second)
}

// TestPrometheusMetrics: the metrics file (HAPROXY_WRAPPER_METRICS_FILE) and
// "status --prometheus" follow a good and a failed reload, parsed by a real
// Prometheus parser; once the wrapper ends the file says it is down.
func TestPrometheusMetrics(t *testing.T) {
	dir := testutil.ShortDir(t)
	metrics := filepath.Join(dir, "wrapper.prom")
	w := startRealIn(t, dir, "expose-fd listeners", true, wrapperOpts{env: []string{"HAPROXY_WRAPPER_METRICS_FILE=" + metrics}})
	fileSays := func(what string, want map[string]float64) {
		t.Helper()
		var last string
		testutil.WaitFor(t, 10*time.Second, "the metrics file to show "+what, func() bool {
			b, err := os.ReadFile(metrics)
			if err != nil {
				return false
			}
			last = string(b)
			m := testutil.ParsePrometheus(t, last)
			for k, v := range want {
				if got, ok := m[k]; !ok || got != v {
					return false
				}
			}
			return true
		})
	}
	fileSays("the first generation serving", map[string]float64{"haproxy_wrapper_up": 1, "haproxy_wrapper_serving": 1,
		`haproxy_wrapper_generations{state="serving"}`: 1, `haproxy_wrapper_reloads_total{result="ok"}`: 0})

	w.signal(syscall.SIGUSR2)
	w.waitReloads(1)
	fileSays("one good reload", map[string]float64{`haproxy_wrapper_reloads_total{result="ok"}`: 1,
		`haproxy_wrapper_reloads_total{result="failed"}`: 0, "haproxy_wrapper_last_reload_success": 1})

	cfg := filepath.Join(dir, "haproxy.cfg")
	good, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, append(append([]byte(nil), good...), "    no-such-keyword\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	w.signal(syscall.SIGUSR2)
	w.waitReloads(2)
	fileSays("one failed reload", map[string]float64{`haproxy_wrapper_reloads_total{result="failed"}`: 1,
		"haproxy_wrapper_last_reload_success": 0, "haproxy_wrapper_serving": 1})

	// The command, as node_exporter's textfile script or a person runs it.
	cmd := exec.Command(w.bin, "status", "--prometheus")
	cmd.Env = baseEnv(dir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("status --prometheus: %v\n%s", err, out)
	}
	m := testutil.ParsePrometheus(t, string(out))
	for k, v := range map[string]float64{"haproxy_wrapper_up": 1, `haproxy_wrapper_reloads_total{result="ok"}`: 1,
		`haproxy_wrapper_reloads_total{result="failed"}`: 1, `haproxy_wrapper_generations{state="serving"}`: 1} {
		if m[k] != v {
			t.Errorf("status --prometheus: %s = %v, want %v\n%s", k, m[k], v, out)
		}
	}
	if m["haproxy_wrapper_current_connections"] < 0 || m["haproxy_wrapper_last_reload_duration_seconds"] <= 0 {
		t.Errorf("status --prometheus: connections %v, last reload duration %v", m["haproxy_wrapper_current_connections"], m["haproxy_wrapper_last_reload_duration_seconds"])
	}

	w.signal(syscall.SIGTERM)
	if code := w.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	b, err := os.ReadFile(metrics)
	if err != nil {
		t.Fatal(err)
	}
	if m := testutil.ParsePrometheus(t, string(b)); len(m) != 1 || m["haproxy_wrapper_up"] != 0 {
		t.Errorf("metrics file after the wrapper ended: %v", m)
	}
	// And the command, with no wrapper to answer.
	cmd = exec.Command(w.bin, "status", "--prometheus")
	cmd.Env = baseEnv(dir)
	out, err = cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("status --prometheus with no wrapper: %v, want exit 3", err)
	}
	if m := testutil.ParsePrometheus(t, string(out)); m["haproxy_wrapper_up"] != 0 {
		t.Errorf("status --prometheus with no wrapper: %v", m)
	}
}
