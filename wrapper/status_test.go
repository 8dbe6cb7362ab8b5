package main

import (
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/control"
)

// holdConns opens n connections that each sent half a request, so haproxy
// keeps them (also through a soft stop).
func holdConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var cs []net.Conn
	for i := 0; i < n; i++ {
		c, err := dialHalfRequest(addr)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
	return cs
}

func TestLiveStatusOverNotifyAndJSON(t *testing.T) {
	notify := filepath.Join(shortDir(t), "notify")
	nc := listenNotify(t, notify)
	w := startRealOpts(t, true, wrapperOpts{env: []string{"NOTIFY_SOCKET=" + notify, "HAPROXY_WRAPPER_STATUS_INTERVAL=100ms"}})
	dir, addr := w.dir, w.addr
	conns := holdConns(t, addr, 20)
	got := readDatagramWith(t, nc, "STATUS=haproxy 2.6")
	for !strings.Contains(got, " · 20 conns") {
		got = readDatagramWith(t, nc, "STATUS=haproxy 2.6")
	}
	first := w.status()
	if first.CurrConns != 20 || first.Generation != 1 || !first.Serving {
		t.Fatalf("status --json: conns %d gen %d serving %v, want 20, 1, true", first.CurrConns, first.Generation, first.Serving)
	}
	if ans, err := control.RequestText(w.ctlPath, "reload", 30*time.Second); err != nil || !strings.HasPrefix(ans, "ok") {
		t.Fatalf("reload: %q %v", ans, err)
	}
	for !strings.Contains(got, "gen 2 · 0 conns") || !strings.Contains(got, "1 old gen draining (20 conns)") || !strings.Contains(got, "reloaded") {
		got = readDatagramWith(t, nc, "STATUS=haproxy 2.6")
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
	waitFor(t, 15*time.Second, "the old generation to drain", func() bool { return w.status().Draining == 0 })
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
	notify := filepath.Join(shortDir(t), "notify")
	nc := listenNotify(t, notify)
	// 400ms watchdog: a ping every 200ms while haproxy answers.
	w := startRealOpts(t, false, wrapperOpts{env: []string{"NOTIFY_SOCKET=" + notify, "WATCHDOG_USEC=400000"}})
	readDatagramWith(t, nc, "WATCHDOG=1")
	readDatagramWith(t, nc, "WATCHDOG=1")
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
	readDatagramWith(t, nc, "WATCHDOG=1")
	w.waitLog("watchdog: haproxy answers again", 10*time.Second)
}
