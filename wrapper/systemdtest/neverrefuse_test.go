package systemdtest

// "Never refuse a connection": listening sockets that outlive every haproxy
// process, under a real systemd, with a configuration of 10,000 backends
// and a steady load of new connections. Each test prints, beside the
// wrapper's figure, Debian's own unit (haproxy -Ws) on the same load.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/loadgen"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

const (
	bigBackends  = 10000
	loadWorkers  = 8
	packagedUnit = "/lib/systemd/system/haproxy.service"
)

// bigConfig is a frontend on each port answering body, and n backends (one
// server each) that make every start parse a large file.
func bigConfig(body string, n int, ports ...int) string {
	var b strings.Builder
	b.WriteString("frontend hsw_big\n    mode http\n    timeout client 10s\n")
	for _, p := range ports {
		fmt.Fprintf(&b, "    bind 127.0.0.1:%d\n", p)
	}
	fmt.Fprintf(&b, "    http-request return status 200 content-type text/plain string \"%s\"\n", body)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "backend hsw_b%d\n    mode http\n    timeout connect 1s\n    timeout server 5s\n    server s1 127.0.0.1:%d\n", i, 10000+i%50000)
	}
	return b.String()
}

// refuses tells whether a connection to 127.0.0.1:port is refused.
func refuses(port int) bool {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer syscall.Close(fd)
	err = syscall.Connect(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
	return err == syscall.ECONNREFUSED
}

// waitRefuses waits (bounded) until the port refuses connections.
func waitRefuses(t *testing.T, port int, what string) {
	t.Helper()
	if err := testutil.Poll(10*time.Second, 20*time.Millisecond, func() (bool, string) {
		return refuses(port), fmt.Sprintf("127.0.0.1:%d still accepts (listening inodes %v)", port, testutil.ListenInodesOnPort(t, port))
	}); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// bigBoot boots a systemd for the big configuration on a free port (see
// bigSetup); it returns the port and the configuration's path.
func bigBoot(t *testing.T) (s *Systemd, port int, cfg string) {
	s = Boot(t)
	port = testutil.Port(t)
	return s, port, bigSetup(t, s, SharedTempDir(t), port)
}

// bigSetup boots a systemd with /run/haproxy (Debian's tmpfiles entry) and
// writes the big configuration; it returns the file and the port.
func bigSetup(t *testing.T, s *Systemd, dir string, ports ...int) string {
	t.Helper()
	if err := os.MkdirAll(s.Path("/run/haproxy"), 0o2775); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "big.cfg")
	writeFile(t, cfg, bigConfig("big-1", bigBackends, ports...))
	return cfg
}

// systemctlUnderLoad runs "systemctl verb" on the unit n times (each
// bounded by timeout) under load, waits for 50 more answers after each, then
// calls check.
func systemctlUnderLoad(t *testing.T, s *Systemd, port int, verb string, n int, timeout time.Duration, check func(i int)) loadgen.Result {
	t.Helper()
	return loadDuring(t, port, func(load *loadgen.Background) {
		for i := 1; i <= n; i++ {
			if out, err := s.SystemctlTimeout(timeout, verb, unitName); err != nil {
				t.Fatalf("%s %d: %v: %s\njournal:\n%s", verb, i, err, out, s.Journal(unitName))
			}
			if err := load.WaitMore(50, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			check(i)
		}
	})
}

// loadDuring runs the load while act runs, then waits for some more
// requests after it, and returns the counts.
func loadDuring(t *testing.T, port int, act func(load *loadgen.Background)) loadgen.Result {
	t.Helper()
	load := loadgen.Start(fmt.Sprintf("127.0.0.1:%d", port), loadWorkers, 5*time.Minute)
	defer load.Stop()
	if err := load.WaitMore(200, 20*time.Second); err != nil {
		t.Fatalf("before: %v", err)
	}
	act(load)
	if err := load.WaitMore(200, 20*time.Second); err != nil {
		t.Fatalf("after: %v", err)
	}
	return load.Stop()
}

// wrapperUnit installs the project's haproxy.service on the big
// configuration, with no start limit (for the restarts and kills).
func wrapperUnit(t *testing.T, s *Systemd, cfg string) {
	t.Helper()
	s.WriteUnit(unitName, RenderUnit(t, "haproxy.service.in"))
	s.WriteDropIn(unitName, "10-hsw-test.conf", fmt.Sprintf(`[Service]
Environment=CONFIG=%s
Environment=HAPROXY_BIN=/usr/sbin/haproxy
RestartSec=100ms
TimeoutStopSec=30s
[Unit]
StartLimitIntervalSec=0
`, cfg))
	s.DaemonReload()
}

// stockUnit installs Debian's own haproxy.service (haproxy -Ws) on the big
// configuration as haproxy.service, for the figures beside the wrapper's.
func stockUnit(t *testing.T, s *Systemd, cfg string) {
	t.Helper()
	unit, err := s.ReadFile(packagedUnit)
	if err != nil {
		t.Fatalf("Debian's unit: %v (make deps installs haproxy)", err)
	}
	s.WriteUnit(unitName, unit)
	s.WriteDropIn(unitName, "10-hsw-test.conf", fmt.Sprintf(`[Service]
Environment="EXTRAOPTS=-f %s"
%sRestartSec=100ms
TimeoutStopSec=20s
[Unit]
StartLimitIntervalSec=0
`, cfg, devLogBind))
	s.DaemonReload()
}

// switchedUnit is Debian's unit switched to the wrapper by the project's
// drop-in, Debian's stock /etc/haproxy/haproxy.cfg untouched, the big
// configuration added through EXTRAOPTS.
func switchedUnit(t *testing.T, s *Systemd, cfg string) {
	t.Helper()
	stockUnit(t, s, cfg)
	s.WriteDropIn(unitName, "50-haproxy-systemd-wrapper.conf", RenderUnit(t, "haproxy.service.d.conf.in"))
	s.DaemonReload()
}

func startUnit(t *testing.T, s *Systemd) {
	t.Helper()
	if out, err := s.SystemctlTimeout(60*time.Second, "start", unitName); err != nil {
		t.Fatalf("systemctl start: %v: %s\nstate: %s\njournal:\n%s", err, out, FormatState(s.State(unitName)), s.Journal(unitName))
	}
}

func stopUnit(t *testing.T, s *Systemd) {
	t.Helper()
	if out, err := s.SystemctlTimeout(60*time.Second, "stop", unitName); err != nil {
		t.Fatalf("systemctl stop: %v: %s", err, out)
	}
}

func refusedOf(r loadgen.Result) int { return r.Errors["refused"] }

// TestStockConfigReloadsKeepSockets: Debian's unit switched to the wrapper
// by its drop-in, Debian's stock configuration untouched (its stats socket
// has no "expose-fd listeners", no HAPROXY_STATS_SOCKET is set): 10 reloads
// under load lose nothing and keep the listening socket (its inode); a bind
// line removed by a reload closes its port; "systemctl stop" closes every
// port. Debian's own unit on the same load is measured beside.
func TestStockConfigReloadsKeepSockets(t *testing.T) {
	stock, err := os.ReadFile("/etc/haproxy/haproxy.cfg")
	if err != nil || !strings.Contains(string(stock), "stats socket /run/haproxy/admin.sock") || strings.Contains(string(stock), "expose-fd") {
		t.Fatalf("/etc/haproxy/haproxy.cfg is not Debian's stock file (%v)", err)
	}
	s := Boot(t)
	dir := SharedTempDir(t)
	port, port2 := testutil.Port(t), testutil.Port(t)
	for port2 == port {
		port2 = testutil.Port(t)
	}
	cfg := bigSetup(t, s, dir, port, port2)
	const reloads = 10
	reloadAll := func(t *testing.T, check func(i int)) loadgen.Result {
		return systemctlUnderLoad(t, s, port, "reload", reloads, 60*time.Second, check)
	}

	// Debian's own unit, for the figure beside.
	stockUnit(t, s, cfg)
	startUnit(t, s)
	WaitHTTP(t, port, "big-1", 30*time.Second)
	stockKept := 0
	before := testutil.ListenInodesOnPort(t, port)
	rs := reloadAll(t, func(int) {
		if slices.Equal(testutil.ListenInodesOnPort(t, port), before) {
			stockKept++
		}
	})
	stopUnit(t, s)

	switchedUnit(t, s, cfg)
	startUnit(t, s)
	WaitHTTP(t, port, "big-1", 30*time.Second)
	first := testutil.ListenInodesOnPort(t, port)
	if len(first) != 1 {
		t.Fatalf("listening sockets on port %d: %v, want one", port, first)
	}
	r := reloadAll(t, func(i int) {
		if got := testutil.ListenInodesOnPort(t, port); !slices.Equal(got, first) {
			t.Errorf("after reload %d the listening sockets are %v, want %v (the same socket handed over)", i, got, first)
		}
	})
	t.Logf("%d reloads of %d backends under %d clients: wrapper (Debian's unit switched, stock config) %d requests, %d failed, socket kept %d/%d; Debian's unit (haproxy -Ws) %d requests, %d failed, socket kept %d/%d",
		reloads, bigBackends, loadWorkers, r.Sent, r.Failed, reloads, reloads, rs.Sent, rs.Failed, stockKept, reloads)
	if r.Failed > 0 {
		t.Errorf("%d of %d requests failed during the reloads: %v %q", r.Failed, r.Sent, r.Errors, r.Samples)
	}
	if j := s.Journal(unitName); strings.Contains(j, "retrying without socket handover") || strings.Contains(j, "Failed to get the number of sockets") {
		t.Errorf("a reload failed to take the sockets over:\n%s", j)
	}

	// A bind line removed by a reload closes its port.
	writeFile(t, cfg, bigConfig("big-2", bigBackends, port))
	if out, err := s.SystemctlTimeout(60*time.Second, "reload", unitName); err != nil {
		t.Fatalf("reload without port %d: %v: %s", port2, err, out)
	}
	WaitHTTP(t, port, "big-2", 10*time.Second)
	waitRefuses(t, port2, "a bind line removed by a reload")
	if got := testutil.ListenInodesOnPort(t, port); !slices.Equal(got, first) {
		t.Errorf("the kept port's socket changed: %v, want %v", got, first)
	}
	stopUnit(t, s)
	waitRefuses(t, port, "after systemctl stop")
}

// TestRestartsLoseNothing: 5 "systemctl restart" of the project's unit under
// load: the listening socket waits in systemd's file descriptor store while
// the old haproxy finishes its requests and the new one starts, so nothing
// is refused or reset and the socket (inode) is the same after each.
// Debian's unit on the same load is measured beside.
func TestRestartsLoseNothing(t *testing.T) {
	s, port, cfg := bigBoot(t)
	const restarts = 5
	restartAll := func(t *testing.T, check func(i int)) loadgen.Result {
		return systemctlUnderLoad(t, s, port, "restart", restarts, 90*time.Second, check)
	}
	stockUnit(t, s, cfg)
	startUnit(t, s)
	WaitHTTP(t, port, "big-1", 30*time.Second)
	rs := restartAll(t, func(int) {})
	stopUnit(t, s)

	wrapperUnit(t, s, cfg)
	startUnit(t, s)
	WaitHTTP(t, port, "big-1", 30*time.Second)
	first := testutil.ListenInodesOnPort(t, port)
	r := restartAll(t, func(i int) {
		if got := testutil.ListenInodesOnPort(t, port); !slices.Equal(got, first) {
			t.Errorf("after restart %d the listening sockets are %v, want %v (kept in systemd's store)", i, got, first)
		}
	})
	t.Logf("%d restarts with %d backends under %d clients: wrapper %d requests, %d failed (%d refused); Debian's unit (haproxy -Ws) %d requests, %d failed (%d refused)",
		restarts, bigBackends, loadWorkers, r.Sent, r.Failed, refusedOf(r), rs.Sent, rs.Failed, refusedOf(rs))
	if r.Failed > 0 {
		t.Errorf("%d of %d requests failed during the restarts: %v %q\njournal:\n%s", r.Failed, r.Sent, r.Errors, r.Samples, s.Journal(unitName))
	}
	if j := s.Journal(unitName); !strings.Contains(j, "passed by systemd") {
		t.Errorf("no line about the sockets systemd passed back:\n%s", j)
	}
	stopUnit(t, s)
	waitRefuses(t, port, "after systemctl stop")

	// The forking unit: its -D parent passes the sockets on to the daemon,
	// and the daemon stores them again at each status tick (its first
	// FDSTORE may come before systemd knows it as the main process).
	s.WriteUnit(unitName, RenderUnit(t, "haproxy-forking.service.in"))
	s.WriteDropIn(unitName, "20-hsw-status.conf", "[Service]\nEnvironment=HAPROXY_WRAPPER_STATUS_INTERVAL=200ms\n")
	s.DaemonReload()
	startUnit(t, s)
	WaitHTTP(t, port, "big-1", 30*time.Second)
	waitStored(t, s, 1)
	first = testutil.ListenInodesOnPort(t, port)
	rf := restartAll(t, func(i int) {
		waitStored(t, s, 1)
		if got := testutil.ListenInodesOnPort(t, port); !slices.Equal(got, first) {
			t.Errorf("forking unit: after restart %d the listening sockets are %v, want %v", i, got, first)
		}
	})
	t.Logf("%d restarts of the forking unit: %d requests, %d failed (%d refused)", restarts, rf.Sent, rf.Failed, refusedOf(rf))
	if rf.Failed > 0 {
		t.Errorf("forking unit: %d of %d requests failed during the restarts: %v %q\njournal:\n%s", rf.Failed, rf.Sent, rf.Errors, rf.Samples, s.Journal(unitName))
	}
	stopUnit(t, s)
	waitRefuses(t, port, "forking unit, after systemctl stop")
}

// waitStored waits until the unit's file descriptor store holds at least n
// descriptors (NFileDescriptorStore, systemd >= 254). Older systemd does not
// say: then it waits until the wrapper sent its store twice after systemd
// knew the main process (two live STATUS= lines, which come right before).
func waitStored(t *testing.T, s *Systemd, n int) {
	t.Helper()
	if v := s.Show(unitName, "NFileDescriptorStore")["NFileDescriptorStore"]; v != "" {
		if err := testutil.Poll(20*time.Second, 50*time.Millisecond, func() (bool, string) {
			got, _ := strconv.Atoi(s.Show(unitName, "NFileDescriptorStore")["NFileDescriptorStore"])
			return got >= n, fmt.Sprintf("NFileDescriptorStore=%d, want >= %d", got, n)
		}); err != nil {
			t.Fatalf("%v\njournal:\n%s", err, s.Journal(unitName))
		}
		return
	}
	seen := map[string]bool{}
	if err := testutil.Poll(20*time.Second, 20*time.Millisecond, func() (bool, string) {
		if st := s.Show(unitName, "StatusText")["StatusText"]; strings.Contains(st, " gen ") {
			seen[st] = true
		}
		return len(seen) >= 2, fmt.Sprintf("live STATUS= lines seen: %d", len(seen))
	}); err != nil {
		t.Fatalf("%v", err)
	}
}

// TestCrashesRefuseNothing: 3 SIGKILLs of the serving haproxy under load:
// the wrapper starts a new one at once from the held socket; no connection
// is refused, only the requests in flight inside the killed process fail;
// the unit stays active with the same main process. Debian's unit on the
// same load (its Restart= brings haproxy back) is measured beside.
func TestCrashesRefuseNothing(t *testing.T) {
	s, port, cfg := bigBoot(t)
	const kills = 3
	// worker is the serving haproxy: the newest haproxy child of the main
	// process (Debian's -Ws: the master's worker; the wrapper: its
	// generation).
	worker := func() int {
		var newest int
		for _, p := range s.Children(mainPID(s.State(unitName))) {
			if s.ProcComm(p) == "haproxy" && p > newest {
				newest = p
			}
		}
		return newest
	}
	killAll := func(t *testing.T, after func(i, killed int)) loadgen.Result {
		return loadDuring(t, port, func(load *loadgen.Background) {
			for i := 1; i <= kills; i++ {
				w := worker()
				if w == 0 {
					t.Fatalf("kill %d: no serving haproxy under %s", i, FormatState(s.State(unitName)))
				}
				s.KillInside(w, "KILL")
				after(i, w)
				if err := load.WaitMore(100, 30*time.Second); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	stockUnit(t, s, cfg)
	startUnit(t, s)
	WaitHTTP(t, port, "big-1", 30*time.Second)
	rs := killAll(t, func(i, killed int) {
		if err := testutil.Poll(60*time.Second, 50*time.Millisecond, func() (bool, string) {
			w := worker()
			return w != 0 && w != killed && !refuses(port), "no new worker yet"
		}); err != nil {
			t.Fatalf("Debian's unit after kill %d: %v", i, err)
		}
	})
	stopUnit(t, s)

	wrapperUnit(t, s, cfg)
	startUnit(t, s)
	WaitHTTP(t, port, "big-1", 30*time.Second)
	main := mainPID(s.State(unitName))
	first := testutil.ListenInodesOnPort(t, port)
	r := killAll(t, func(i, killed int) {
		if _, ok := s.WaitJournal(unitName, fmt.Sprintf("respawned: generation %d serving", i+1), 60*time.Second); !ok {
			t.Fatalf("kill %d: no respawn in the journal:\n%s", i, s.Journal(unitName))
		}
	})
	st := s.State(unitName)
	t.Logf("%d SIGKILLs of the serving haproxy with %d backends under %d clients: wrapper %d requests, %d failed (%d refused); Debian's unit (haproxy -Ws, Restart=) %d requests, %d failed (%d refused)",
		kills, bigBackends, loadWorkers, r.Sent, r.Failed, refusedOf(r), rs.Sent, rs.Failed, refusedOf(rs))
	if refusedOf(r) > 0 {
		t.Errorf("%d connections refused during the crashes: %q", refusedOf(r), r.Samples)
	}
	if r.Failed > kills*loadWorkers {
		t.Errorf("%d requests failed: more than were in flight inside the killed processes (%d clients, %d kills): %v %q", r.Failed, loadWorkers, kills, r.Errors, r.Samples)
	}
	if mainPID(st) != main || st["ActiveState"] != "active" {
		t.Errorf("after the kills: %s, want active with MainPID %d", FormatState(st), main)
	}
	if got := testutil.ListenInodesOnPort(t, port); !slices.Equal(got, first) {
		t.Errorf("listening sockets %v after the respawns, want %v", got, first)
	}
	if n, _ := strconv.Atoi(st["NRestarts"]); n != 0 {
		t.Errorf("NRestarts=%d: the unit restarted instead of the wrapper respawning haproxy", n)
	}
	stopUnit(t, s)
	waitRefuses(t, port, "after systemctl stop")
}

// lowPort finds a port below 1024 free on 127.0.0.1.
func lowPort(t *testing.T) int {
	t.Helper()
	for p := 900; p < 1024; p++ {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = syscall.Bind(fd, &syscall.SockaddrInet4{Port: p, Addr: [4]byte{127, 0, 0, 1}})
		syscall.Close(fd)
		if err == nil {
			return p
		}
	}
	t.Fatal("no free port between 900 and 1023 on 127.0.0.1")
	return 0
}

// TestSocketActivation: the example haproxy.socket binds a port below 1024
// for haproxy.service, which runs without CAP_NET_BIND_SERVICE: the first
// connection starts the service and is answered; haproxy listens on the very
// socket systemd bound; a socket no bind line uses is closed with a line;
// restarts and a stop of the service leave the port listening (the socket
// unit's), and no request fails meanwhile.
func TestSocketActivation(t *testing.T) {
	s := Boot(t)
	dir := SharedTempDir(t)
	port, unused := lowPort(t), testutil.Port(t)
	cfg := filepath.Join(dir, "haproxy.cfg")
	writeFile(t, cfg, haproxyConfig(port, "activated"))
	if err := os.MkdirAll(s.Path("/run/hsw"), 0o755); err != nil {
		t.Fatal(err)
	}
	sock := RenderUnit(t, "haproxy.socket.in")
	if !strings.Contains(sock, "ListenStream=0.0.0.0:80\n") {
		t.Fatalf("contrib/systemd/haproxy.socket.in has no ListenStream=0.0.0.0:80:\n%s", sock)
	}
	sock = strings.Replace(sock, "ListenStream=0.0.0.0:80\n", fmt.Sprintf("ListenStream=127.0.0.1:%d\nListenStream=127.0.0.1:%d\n", port, unused), 1)
	s.WriteUnit("haproxy.socket", sock)
	s.WriteUnit(unitName, RenderUnit(t, "haproxy.service.in"))
	s.WriteDropIn(unitName, "10-hsw-test.conf", testDropIn(cfg)+"CapabilityBoundingSet=~CAP_NET_BIND_SERVICE\n[Unit]\nRequires=haproxy.socket\nAfter=haproxy.socket\n")
	s.DaemonReload()
	if out, err := s.Systemctl("start", "haproxy.socket"); err != nil {
		t.Fatalf("systemctl start haproxy.socket: %v: %s", err, out)
	}
	inodes := testutil.ListenInodesOnPort(t, port)
	if len(inodes) != 1 {
		t.Fatalf("the socket unit listens on %v", inodes)
	}
	// The first connection starts the service and is served.
	code, body, err := HTTPGet(port)
	if err != nil || code != 200 || body != "activated" {
		t.Fatalf("first request through the socket unit: %d %q %v\njournal:\n%s", code, body, err, s.Journal(unitName))
	}
	// haproxy answers a moment before the wrapper's READY=1 reaches systemd.
	st := s.WaitState(unitName, 20*time.Second, "haproxy.service active after the first connection", func(m map[string]string) bool {
		return m["ActiveState"] == "active"
	})
	j, _ := s.WaitJournal(unitName, "passed by systemd", 5*time.Second)
	if !strings.Contains(j, "holding 2 listening socket(s) passed by systemd") {
		t.Errorf("no line about the 2 sockets systemd passed:\n%s", j)
	}
	if _, ok := s.WaitJournal(unitName, fmt.Sprintf("listening socket tcp 127.0.0.1:%d closed: no bind line", unused), 5*time.Second); !ok {
		t.Errorf("no line about the unused socket 127.0.0.1:%d:\n%s", unused, s.Journal(unitName))
	}
	caps, _ := s.ReadFile(fmt.Sprintf("/proc/%d/status", mainPID(st)))
	if !strings.Contains(caps, "CapBnd:") || capHas(caps, "CapBnd:", 10) {
		t.Errorf("the service keeps CAP_NET_BIND_SERVICE in its bounding set:\n%s", caps)
	}
	if got := testutil.ListenInodesOnPort(t, port); !slices.Equal(got, inodes) {
		t.Errorf("haproxy listens on %v, want the socket unit's %v", got, inodes)
	}
	r := loadDuring(t, port, func(load *loadgen.Background) {
		for i := 0; i < 2; i++ {
			if out, err := s.SystemctlTimeout(60*time.Second, "restart", unitName); err != nil {
				t.Fatalf("restart: %v: %s", err, out)
			}
			if err := load.WaitMore(50, 20*time.Second); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Logf("2 restarts of the socket-activated service under %d clients: %d requests, %d failed", loadWorkers, r.Sent, r.Failed)
	if r.Failed > 0 {
		t.Errorf("%d requests failed over the restarts: %v %q", r.Failed, r.Errors, r.Samples)
	}
	stopUnit(t, s)
	if refuses(port) {
		t.Errorf("the port refuses connections with the service stopped: the socket unit should hold it")
	}
	if out, err := s.Systemctl("stop", "haproxy.socket", unitName); err != nil {
		t.Fatalf("stop: %v: %s", err, out)
	}
	waitRefuses(t, port, "after stopping the socket and the service")
}

// capHas tells whether the capability set on the line starting with field
// (hexadecimal, /proc/PID/status) has capability bit.
func capHas(status, field string, bit uint) bool {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && n&(1<<bit) != 0
		}
	}
	return false
}
