package main

import (
	"bufio"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestWatchdogInterval(t *testing.T) {
	tests := []struct {
		usec       int64
		wpid, mine int
		want       time.Duration
	}{
		{0, 0, 10, 0},
		{2_000_000, 0, 10, time.Second},
		{2_000_000, 10, 10, time.Second},
		{2_000_000, 11, 10, 0}, // meant for another process
	}
	for _, tt := range tests {
		if got := watchdogInterval(tt.usec, tt.wpid, tt.mine); got != tt.want {
			t.Errorf("watchdogInterval(%d, %d, %d) = %s, want %s", tt.usec, tt.wpid, tt.mine, got, tt.want)
		}
	}
}

func TestCountEstablished(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:D2F2 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:1F90 0100007F:D2F4 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0000000000000000
`
	got := countEstablishedIn(bufio.NewScanner(strings.NewReader(table)), map[string]bool{"111": true, "222": true, "999": true})
	if got != 1 {
		t.Fatalf("got %d established sockets of ours, want 1", got)
	}
}

func TestStatusLine(t *testing.T) {
	at := time.Now().Add(-2 * time.Minute)
	tests := []struct {
		r    statusReport
		want string
	}{
		{statusReport{HAProxyVersion: "2.6.12"}, "haproxy 2.6.12 not serving"},
		{statusReport{HAProxyVersion: "2.6.12", Serving: true, PID: 4242, Generation: 7, CurrConns: 153, ConnRate: 12,
			Draining: 1, DrainingConns: 3, LastReload: &reloadRecord{At: at, OK: true}},
			"haproxy 2.6.12 pid 4242 gen 7 · 153 conns (12/s) · 1 old gen draining (3 conns) · reloaded 2m0s ago: ok"},
		{statusReport{HAProxyVersion: "2.6.12", Serving: true, PID: 1, Generation: 2, CurrConns: -1, StatsError: "x",
			LastReload: &reloadRecord{At: at, Error: "configuration check failed"}},
			"haproxy 2.6.12 pid 1 gen 2 · stats unavailable · reload 2m0s ago FAILED: configuration check failed"},
	}
	for _, tt := range tests {
		if got := tt.r.line(); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
	}
}

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
	if ans, err := controlRequest(w.ctlPath, "reload", 30*time.Second); err != nil || !strings.HasPrefix(ans, "ok") {
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
	ans, _ := controlRequest(w.ctlPath, "status json", 10*time.Second)
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
