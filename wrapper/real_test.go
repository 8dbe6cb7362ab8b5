package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/loadgen"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/status"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// Tests against the real haproxy from Debian's packages, on loopback.

func TestRealStartServeStop(t *testing.T) {
	w := startReal(t, true)
	pid, err := servedBy(w.addr)
	if err != nil {
		t.Fatalf("GET %s: %v", w.addr, err)
	}
	st := w.status()
	if !st.Serving || st.PID != pid || st.Generation != 1 {
		t.Fatalf("status = serving %v pid %d gen %d, want serving pid %d gen 1", st.Serving, st.PID, st.Generation, pid)
	}
	b, err := os.ReadFile(w.dir + "/haproxy.pid")
	if err != nil || strings.TrimSpace(string(b)) != itoa(pid) {
		t.Fatalf("pid file = %q, %v; want %d", b, err, pid)
	}
	w.signal(syscall.SIGTERM)
	if code := w.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}
	if proc.Alive(pid) {
		t.Fatalf("haproxy pid %d still alive after the wrapper exited", pid)
	}
	if _, err := os.Stat(w.dir + "/haproxy.pid"); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
	if !strings.Contains(w.out.String(), "<5>haproxy-systemd-wrapper: exit, haproxy RC=0") {
		t.Errorf("no legacy exit line in the log")
	}
}

func TestRealReloadsUnderLoadLoseNothing(t *testing.T) {
	w := startReal(t, true)
	wpid := w.pid()
	ctx, cancel := context.WithCancel(context.Background())
	resc := make(chan loadgen.Result, 1)
	go func() { resc <- loadgen.Run(ctx, loadgen.Options{Addr: w.addr, Workers: 8, KeepAlive: 2}) }()
	before, _ := servedBy(w.addr)
	for i := 1; i <= 20; i++ {
		w.signal(syscall.SIGUSR2)
		st := w.waitReloads(i)
		if st.LastReload == nil || !st.LastReload.OK {
			t.Fatalf("reload %d failed: %+v", i, st.LastReload)
		}
	}
	time.Sleep(200 * time.Millisecond) // keep the load on the last generation a moment
	cancel()
	res := <-resc
	t.Logf("load during 20 reloads: %s", res)
	if res.Sent < 100 {
		t.Fatalf("load generator sent only %d requests", res.Sent)
	}
	if res.Failed != 0 {
		t.Fatalf("%d of %d requests failed during reloads: %v", res.Failed, res.Sent, res.Errors)
	}
	if w.pid() != wpid || w.exited() {
		t.Fatalf("wrapper pid changed or it exited")
	}
	after, err := servedBy(w.addr)
	if err != nil || after == before {
		t.Fatalf("after 20 reloads served by pid %d (%v), before by %d: want a new pid", after, err, before)
	}
	if st := w.status(); st.Generation != 21 {
		t.Fatalf("generation = %d, want 21", st.Generation)
	}
}

func TestRealBrokenConfigReloadKeepsServing(t *testing.T) {
	w := startReal(t, true)
	cfg := w.dir + "/haproxy.cfg"
	good, _ := os.ReadFile(cfg)
	before, err := servedBy(w.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(good, []byte("\nfrontend broken\n    bind 127.0.0.1:notaport\n    no-such-keyword\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	w.signal(syscall.SIGUSR2)
	st := w.waitReloads(1)
	if st.LastReload.OK || !strings.Contains(st.LastReload.Error, "exited during start: exit code 1") || !strings.Contains(st.LastReload.Error, "no-such-keyword") {
		t.Fatalf("last reload = %+v, want a failed load with haproxy's reason", st.LastReload)
	}
	if got, err := servedBy(w.addr); err != nil || got != before {
		t.Fatalf("after a broken reload served by %d (%v), want the old pid %d", got, err, before)
	}
	if !strings.Contains(w.out.String(), ") keeps serving: haproxy generation 2 (pid ") || !strings.Contains(w.out.String(), "<3>haproxy-systemd-wrapper: reload failed, generation 1 (pid ") {
		t.Fatalf("no error line for the failed reload in the log")
	}
	// The synchronous reload command reports the failure too.
	if ans, err := control.RequestText(w.ctlPath, "reload", 30*time.Second); err != nil || !strings.HasPrefix(ans, "error haproxy generation 3 (pid ") {
		t.Fatalf("reload command answered %q, %v", ans, err)
	}
	if err := os.WriteFile(cfg, good, 0o644); err != nil {
		t.Fatal(err)
	}
	ans, err := control.RequestText(w.ctlPath, "reload", 30*time.Second)
	if err != nil || !strings.HasPrefix(ans, "ok generation") {
		t.Fatalf("reload after the fix answered %q, %v", ans, err)
	}
	if got, err := servedBy(w.addr); err != nil || got == before {
		t.Fatalf("after the fixed reload served by %d (%v), want a new pid", got, err)
	}
}

// TestRealHAProxyKilledExits137: with respawning off, a SIGKILLed haproxy
// ends the wrapper with haproxy's status, for systemd's Restart=.
func TestRealHAProxyKilledExits137(t *testing.T) {
	w := startRealOpts(t, true, wrapperOpts{env: []string{"HAPROXY_WRAPPER_RESPAWN_LIMIT=0"}})
	w.killServingWantsExit(w.status().PID, "killed by SIGKILL")
}

// TestRealCrashRespawns: a serving haproxy killed under a steady load of
// new connections is replaced at once from the held listening socket (the
// same socket, so the connections that arrive meanwhile wait in its
// backlog): no connection is refused, only requests in flight inside the
// killed process may fail. Past HAPROXY_WRAPPER_RESPAWN_LIMIT kills within
// a minute the wrapper exits with haproxy's status.
func TestRealCrashRespawns(t *testing.T) {
	// A stop grace longer than the exit bound below: the exit past the
	// limit is the wrapper's own decision, never delayed by the grace.
	w := startRealOpts(t, false, wrapperOpts{env: []string{"HAPROXY_WRAPPER_RESPAWN_LIMIT=2", "HAPROXY_WRAPPER_STOP_GRACE=60s"}})
	first := w.status()
	inodes := listenInodes(t, first.PID)
	const workers = 4
	load := loadgen.Start(w.addr, workers, 60*time.Second)
	defer load.Stop()
	pid := first.PID
	for i := 1; i <= 2; i++ {
		if err := load.WaitMore(200, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var st status.Report
		testutil.WaitFor(t, 20*time.Second, "a respawned generation serving", func() bool {
			st = w.status()
			return st.Serving && st.PID != pid && st.Respawns == i
		})
		if got := listenInodes(t, st.PID); !slices.Equal(got, inodes) {
			t.Fatalf("respawn %d listens on %v, want the held %v", i, got, inodes)
		}
		if st.HeldSockets < 1 {
			t.Fatalf("status: %d held sockets", st.HeldSockets)
		}
		pid = st.PID
	}
	if err := load.WaitMore(200, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	res := load.Stop()
	t.Logf("under load during 2 SIGKILLs and respawns: %d requests, %d failed; errors %q", res.Sent, res.Failed, res.Samples)
	for _, e := range res.Samples {
		if strings.Contains(e, "refused") {
			t.Errorf("a connection was refused: %s", e)
		}
	}
	if res.Failed > 2*workers {
		t.Errorf("%d requests failed: more than were in flight inside the killed processes (%d workers, 2 kills)", res.Failed, workers)
	}
	// A third kill within the minute: past the limit, the wrapper exits
	// with haproxy's status.
	w.killServingWantsExit(pid, "HAPROXY_WRAPPER_RESPAWN_LIMIT=2): no more respawn")
}

func TestRealFiftyReloadsLeakNothing(t *testing.T) {
	w := startReal(t, true)
	// One reload first, so that every lazily opened descriptor exists.
	if ans, err := control.RequestText(w.ctlPath, "reload", 30*time.Second); err != nil || !strings.HasPrefix(ans, "ok") {
		t.Fatalf("reload: %q %v", ans, err)
	}
	testutil.WaitFor(t, 15*time.Second, "the first old generation to finish", func() bool {
		live, zombies := w.children()
		return len(live) == 1 && len(zombies) == 0
	})
	// The held sockets are taken in a helper just after each reload: a
	// count taken during that exchange is a few descriptors off.
	before := stableFDCount(t, w.pid())
	for i := 0; i < 50; i++ {
		if ans, err := control.RequestText(w.ctlPath, "reload", 30*time.Second); err != nil || !strings.HasPrefix(ans, "ok") {
			t.Fatalf("reload %d: %q %v", i, ans, err)
		}
	}
	var live, zombies []int
	testutil.WaitFor(t, 15*time.Second, "old generations to finish and be reaped", func() bool {
		live, zombies = w.children()
		return len(live) == 1 && len(zombies) == 0 && len(w.status().Generations) == 1
	})
	after := stableFDCount(t, w.pid())
	t.Logf("wrapper fds: %d before, %d after 50 reloads; children %v, zombies %v", before, after, live, zombies)
	if after != before {
		t.Fatalf("wrapper fds: %d before, %d after 50 reloads", before, after)
	}
	ents, _ := os.ReadDir(w.dir + "/rt")
	if len(ents) != 4 { // the serving generation's .cfg and .sock, the lock, the listening sockets' hand-over socket
		t.Fatalf("runtime folder holds %d entries, want 4", len(ents))
	}
}

func TestRealSIGUSR1LetsConnectionsFinish(t *testing.T) {
	w := startReal(t, true)
	// Hold a request open: a keep-alive connection that has sent half a request.
	c := testutil.HoldConns(t, w.addr, 1)[0]
	w.signal(syscall.SIGUSR1)
	w.waitLog("SIGUSR1 received", 10*time.Second)
	// The wrapper waits for haproxy, which waits for the open connection.
	if _, err := c.Write([]byte("Host: x\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 512)
	n, _ := c.Read(b)
	if !strings.Contains(string(b[:n]), "200") {
		t.Fatalf("the open request got %q during the graceful stop, want a 200", b[:n])
	}
	if code := w.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("exit code after SIGUSR1 = %d, want 0", code)
	}
}

func TestRealForkingDashD(t *testing.T) {
	w := startRealOpts(t, false, wrapperOpts{noWait: true, args: []string{"-D"}})
	addr := w.addr
	if code := w.waitExit(30 * time.Second); code != 0 {
		t.Fatalf("the -D parent exited %d, want 0 once haproxy serves", code)
	}
	// The parent returns only when haproxy serves and the pid file is written.
	if _, err := servedBy(addr); err != nil {
		t.Fatalf("not serving when the -D parent returned: %v", err)
	}
	b, err := os.ReadFile(w.dir + "/wrapper.pid")
	if err != nil {
		t.Fatalf("wrapper pid file: %v", err)
	}
	daemon := atoiOr0(strings.TrimSpace(string(b)))
	if daemon == 0 || daemon == w.pid() || !proc.Alive(daemon) {
		t.Fatalf("wrapper pid file names %q, want the live daemon", b)
	}
	t.Cleanup(func() { syscall.Kill(daemon, syscall.SIGKILL) })
	if err := syscall.Kill(daemon, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the daemon to exit", func() bool { return !proc.Alive(daemon) })
	if _, err := os.Stat(w.dir + "/wrapper.pid"); !os.IsNotExist(err) {
		t.Errorf("wrapper pid file left after the stop: %v", err)
	}
	assertNoHAProxyFrom(t, w)
}

func TestRealForkingDashDBrokenConfig(t *testing.T) {
	bin := requireRealHAProxy(t)
	dir := testutil.ShortDir(t)
	cfg, _, _ := realConfig(t, dir, "")
	if err := os.WriteFile(cfg, []byte("global\n    no-such-keyword\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := startWrapper(t, dir, wrapperOpts{noWait: true, args: []string{"-D"}, env: []string{"CONFIG=" + cfg, "HAPROXY_BIN=" + bin}})
	if code := w.waitExit(30 * time.Second); code == 0 {
		t.Fatalf("the -D parent exited 0 with a broken config")
	}
	if !strings.Contains(w.out.String(), "haproxy-systemd-wrapper: haproxy did not start: haproxy generation 1 (pid ") || !strings.Contains(w.out.String(), "no-such-keyword") {
		t.Fatalf("no reason on stderr:\n%s", w.out.String())
	}
	if _, err := os.Stat(w.dir + "/wrapper.pid"); !os.IsNotExist(err) {
		t.Errorf("wrapper pid file written for a failed start")
	}
}

// killServingWantsExit kills the serving haproxy pid with SIGKILL and wants
// the wrapper to end with haproxy's status (137, 128+SIGKILL) and its log
// to say line.
func (w *wrapperProc) killServingWantsExit(pid int, line string) {
	w.t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		w.t.Fatal(err)
	}
	if code := w.waitExit(20 * time.Second); code != 137 {
		w.t.Fatalf("exit code after haproxy pid %d was killed = %d, want 137 (128+SIGKILL)", pid, code)
	}
	if !strings.Contains(w.out.String(), line) {
		w.t.Errorf("the log does not say %q", line)
	}
}

// TestRealVersionCache: with HAPROXY_WRAPPER_VERSION_CACHE, the second
// start of the same binary takes its version from the cache instead of
// running "haproxy -v".
func TestRealVersionCache(t *testing.T) {
	dir := testutil.ShortDir(t)
	cache := dir + "/cache/versions"
	opts := wrapperOpts{env: []string{"HAPROXY_WRAPPER_VERSION_CACHE=" + cache, "HAPROXY_WRAPPER_LOG_LEVEL=debug"}}
	w := startRealIn(t, dir, "expose-fd listeners", false, opts)
	version := w.status().HAProxyVersion
	if strings.Contains(w.out.String(), "version from HAPROXY_WRAPPER_VERSION_CACHE") {
		t.Fatalf("the first start used a cache that did not exist")
	}
	w.signal(syscall.SIGTERM)
	if code := w.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("first stop: exit %d", code)
	}
	if b, err := os.ReadFile(cache); err != nil || version == "" || !strings.Contains(string(b), "\t"+version+"\n") {
		t.Fatalf("cache after the first start: %q %v", b, err)
	}
	w2 := startRealIn(t, testutil.ShortDir(t), "expose-fd listeners", false, opts)
	if !strings.Contains(w2.out.String(), "version from HAPROXY_WRAPPER_VERSION_CACHE") {
		t.Errorf("the second start ran haproxy -v again:\n%s", w2.out.String())
	}
	if st := w2.status(); !st.Serving || st.HAProxyVersion == "" {
		t.Errorf("second start: %+v", st)
	}
}

// TestRealStopGrace: with HAPROXY_WRAPPER_STOP_GRACE, SIGTERM soft-stops
// haproxy (SIGUSR1), which exits at once with no connection to finish; the
// wrapper exits 0 long before the grace.
func TestRealStopGrace(t *testing.T) {
	w := startRealOpts(t, false, wrapperOpts{env: []string{"HAPROXY_WRAPPER_STOP_GRACE=60s"}})
	w.signal(syscall.SIGTERM)
	if code := w.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	out := w.out.String()
	if !strings.Contains(out, "soft-stopping haproxy: SIGTERM follows in 1m0s") || !strings.Contains(out, "SIGUSR1 to every haproxy generation") {
		t.Errorf("no soft stop in the log:\n%s", out)
	}
}

// stableFDCount is pid's descriptor count once it read the same three times
// in a row, 20 ms apart (at most 10 s): the wrapper takes each serving
// generation's sockets in a helper just after it serves, and a count taken
// during that exchange is a few descriptors off.
func stableFDCount(t *testing.T, pid int) int {
	t.Helper()
	last, same := -1, 0
	deadline := time.Now().Add(10 * time.Second)
	for same < 3 {
		n := fdCount(t, pid)
		if n == last {
			same++
		} else {
			last, same = n, 1
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d's descriptor count never settled (last %d)", pid, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return last
}
