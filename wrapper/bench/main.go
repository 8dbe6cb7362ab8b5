// Command bench measures haproxy reloads under load, on loopback only, for
// three contenders run one after the other in the same run:
//
//	A  haproxy-systemd-wrapper with socket handover (HAPROXY_STATS_SOCKET, -x)
//	B  haproxy-systemd-wrapper without HAPROXY_STATS_SOCKET (no -x)
//	C  haproxy's own master-worker mode, "haproxy -W -f cfg"
//
// Each contender is started in its own process group with its own temporary
// folder, config and free port; it is measured idle (no load, no reloads),
// then under a steady load of new-connection-per-request clients and
// keep-alive clients while it is reloaded with SIGUSR2, then stopped with
// SIGTERM and reaped. The results are printed as one table.
//
//	go run ./wrapper/bench -wrapper build/haproxy-systemd-wrapper
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/loadgen"

	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// params are the run's knobs, all from flags.
type params struct {
	wrapper, haproxy string
	reloads          int
	interval         time.Duration
	idle             time.Duration
	workers          int
	keepAlive        int
	maxDuration      time.Duration
	only             string
	keepDirs         bool
}

// Bounds of the measurements (not flags: they belong to the definitions).
const (
	probeEvery    = 2 * time.Millisecond  // poll period of the "new pid" probe
	probeTimeout  = time.Second           // one probe request
	readyBound    = 10 * time.Second      // start -> first 200, and signal -> new pid
	stopBound     = 15 * time.Second      // SIGTERM -> exit, then SIGKILL
	drainBound    = 12 * time.Second      // old generations gone after the load (hard-stop-after 10s + margin)
	loadTimeout   = 2 * time.Second       // one load request
	rssSampleTick = 20 * time.Millisecond // VmHWM resets on exec: sample it all the time
	clockTicks    = 100                   // USER_HZ on Linux
)

type contender struct {
	key, title string
	wrapper    bool // false: haproxy -W
	handover   bool // HAPROXY_STATS_SOCKET set
}

var contenders = []contender{
	{"A", "A: wrapper, -x handover", true, true},
	{"B", "B: wrapper, no -x", true, false},
	{"C", "C: haproxy -W", false, false},
}

// result is one contender's column.
type result struct {
	err         string // set when the contender could not be measured
	startReady  time.Duration
	idleCPU     float64 // seconds of utime+stime of the supervisor
	idleFor     time.Duration
	load        loadgen.Result
	loadFor     time.Duration
	signalled   int
	latencies   []time.Duration // reloads that showed a new pid
	latTimeouts int
	probeFails  map[string]int // failures of the latency probe itself
	pids        int            // distinct haproxy pids seen answering
	peakRSSkB   int
	drained     string // processes in the group after the load, and how long they took to drop to 2
	stop        time.Duration
	stopNote    string
	exit        string
	leftover    int
	notes       []string
}

func main() {
	var p params
	flag.StringVar(&p.wrapper, "wrapper", "build/haproxy-systemd-wrapper", "the wrapper binary")
	flag.StringVar(&p.haproxy, "haproxy", "/usr/sbin/haproxy", "the haproxy binary")
	flag.IntVar(&p.reloads, "reloads", 50, "reloads per contender")
	flag.DurationVar(&p.interval, "interval", 200*time.Millisecond, "pause between the end of one reload (new pid seen) and the next signal")
	flag.DurationVar(&p.idle, "idle", 10*time.Second, "idle period for the supervisor CPU measurement (no load, no reloads)")
	flag.IntVar(&p.workers, "load-workers", 16, "load clients opening a new connection per request")
	flag.IntVar(&p.keepAlive, "keepalive", 4, "load clients reusing one keep-alive connection")
	flag.DurationVar(&p.maxDuration, "max-duration", 4*time.Minute, "bound of the whole run (split between the contenders)")
	flag.StringVar(&p.only, "only", "ABC", "contenders to run (subset of ABC)")
	flag.BoolVar(&p.keepDirs, "keep", false, "keep the temporary folders (configs, logs) and print their paths")
	flag.Parse()
	if err := setup(&p); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	interrupted = ctx
	ctx, cancel := context.WithTimeout(ctx, p.maxDuration)
	defer cancel()

	header := machineHeader(p)
	fmt.Print(header)
	var run []contender
	for _, c := range contenders {
		if strings.Contains(strings.ToUpper(p.only), c.key) {
			run = append(run, c)
		}
	}
	results := make([]result, len(run))
	for i, c := range run {
		if interrupted.Err() != nil {
			results[i].err = "not run: interrupted"
			continue
		}
		// Each contender gets an equal share of what is left of the bound.
		left := time.Until(deadlineOf(ctx))
		cctx, ccancel := context.WithTimeout(ctx, left/time.Duration(len(run)-i))
		fmt.Fprintf(os.Stderr, "bench: %s ...\n", c.title)
		t0 := time.Now()
		results[i] = runOne(cctx, c, p)
		ccancel()
		fmt.Fprintf(os.Stderr, "bench: %s done in %s\n", c.key, time.Since(t0).Round(time.Millisecond))
	}
	printTable(os.Stdout, run, results, p)
}

// interrupted ends when the bench gets SIGINT or SIGTERM.
var interrupted = context.Background()

// whyDone names why a contender's context ended.
func whyDone() string {
	if interrupted.Err() != nil {
		return "interrupted"
	}
	return "run bound (-max-duration) reached"
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// setup checks what the run needs; its errors are the only non-zero exits.
func setup(p *params) error {
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if p.reloads < 0 || p.workers < 0 || p.keepAlive < 0 || p.interval < 0 || p.idle < 0 || p.maxDuration <= 0 {
		return errors.New("negative -reloads, -load-workers, -keepalive, -interval or -idle, or non-positive -max-duration")
	}
	for _, r := range strings.ToUpper(p.only) {
		if !strings.ContainsRune("ABC", r) {
			return fmt.Errorf("-only %q: use letters of ABC", p.only)
		}
	}
	abs, err := filepath.Abs(p.wrapper)
	if err != nil {
		return err
	}
	p.wrapper = abs
	for _, bin := range []string{p.wrapper, p.haproxy} {
		st, err := os.Stat(bin)
		if err != nil {
			return fmt.Errorf("%v (run 'make build' first for the wrapper)", err)
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable file", bin)
		}
	}
	if runtime.GOOS != "linux" {
		return errors.New("linux only (/proc)")
	}
	return nil
}

func machineHeader(p params) string {
	var b strings.Builder
	hv := "?"
	if out, err := exec.Command(p.haproxy, "-v").Output(); err == nil {
		hv, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	}
	goVer := runtime.Version()
	if out, err := exec.Command("go", "version").Output(); err == nil {
		goVer = strings.TrimSpace(string(out))
	}
	var u syscall.Utsname
	kernel := "?"
	if syscall.Uname(&u) == nil {
		kernel = cstr(u.Sysname[:]) + " " + cstr(u.Release[:]) + " " + cstr(u.Machine[:])
	}
	cpu := ""
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = " (" + strings.TrimSpace(v) + ")"
				break
			}
		}
	}
	fmt.Fprintf(&b, "machine: nproc %d%s; kernel %s\n", runtime.NumCPU(), cpu, kernel)
	fmt.Fprintf(&b, "haproxy: %s (%s)\n", hv, p.haproxy)
	fmt.Fprintf(&b, "go:      %s\n", goVer)
	fmt.Fprintf(&b, "wrapper: %s\n", p.wrapper)
	fmt.Fprintf(&b, "params:  -reloads %d -interval %s -idle %s -load-workers %d -keepalive %d -max-duration %s; "+
		"load request timeout %s; probe every %s (new connection), new-pid and first-200 bound %s; stop bound %s; loopback 127.0.0.1, free ports\n",
		p.reloads, p.interval, p.idle, p.workers, p.keepAlive, p.maxDuration, loadTimeout, probeEvery, readyBound, stopBound)
	return b.String()
}

func cstr(a []int8) string {
	var b []byte
	for _, c := range a {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

// config is the same for every contender: an HTTP frontend that answers by
// itself and names the serving pid, and an admin stats socket with
// expose-fd listeners (used by A's -x; B is not told about it; C's master
// hands the sockets over through its own socket pair anyway).
func config(dir, addr string) string {
	return fmt.Sprintf(`# generated by wrapper/bench
global
    stats socket "%s/admin.sock" mode 600 level admin expose-fd listeners
    hard-stop-after 10s

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    timeout http-request 5s
    timeout http-keep-alive 2s

frontend bench
    bind %s
    http-request return status 200 content-type text/plain lf-string "pid %%pid\n"
`, dir, addr)
}

// proc is a started supervisor: the wrapper or the haproxy -W master.
type proc struct {
	cmd     *exec.Cmd
	pid     int // also its process group
	done    chan struct{}
	waitErr error
	logPath string
}

func (pr *proc) exited() bool {
	select {
	case <-pr.done:
		return true
	default:
		return false
	}
}

func (pr *proc) exitState() string {
	if pr.cmd.ProcessState == nil {
		return "running"
	}
	return pr.cmd.ProcessState.String()
}

func (pr *proc) logTail(n int) string {
	data, _ := os.ReadFile(pr.logPath)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func startProc(c contender, p params, dir, cfg string) (*proc, error) {
	var cmd *exec.Cmd
	env := cleanEnv(os.Environ())
	if c.wrapper {
		cmd = exec.Command(p.wrapper)
		env = append(env,
			"CONFIG="+cfg,
			"PIDFILE="+dir+"/haproxy.pid",
			"HAPROXY_WRAPPER_CONTROL_SOCKET="+dir+"/ctl.sock",
			"HAPROXY_WRAPPER_RUNTIME_DIR="+dir+"/rt",
			"HAPROXY_WRAPPER_PIDFILE="+dir+"/wrapper.pid",
			"HAPROXY_BIN="+p.haproxy)
		if c.handover {
			env = append(env, "HAPROXY_STATS_SOCKET="+dir+"/admin.sock")
		}
	} else {
		cmd = exec.Command(p.haproxy, "-W", "-f", cfg)
	}
	logPath := filepath.Join(dir, "out.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close() // the child has its own copy
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdin = nil
	// Files, not pipes: Wait must return when the supervisor exits even if a
	// haproxy that inherited its stderr is still alive.
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pr := &proc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{}), logPath: logPath}
	go func() {
		pr.waitErr = cmd.Wait()
		close(pr.done)
	}()
	return pr, nil
}

// cleanEnv drops what would change the contenders' behaviour: systemd's
// variables and every setting the bench gives itself.
func cleanEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "CONFIG", k == "PIDFILE", k == "NOTIFY_SOCKET", k == "LISTEN_FDS", k == "LISTEN_PID",
			strings.HasPrefix(k, "WATCHDOG_"), strings.HasPrefix(k, "HAPROXY_"):
			continue
		}
		out = append(out, kv)
	}
	return out
}

// probe opens a new connection, sends one request and returns the pid named
// in the answer.
func probe(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	s, ok := strings.CutPrefix(strings.TrimSpace(string(body)), "pid ")
	pid, err := strconv.Atoi(s)
	if !ok || err != nil {
		return 0, fmt.Errorf("unexpected body %q", body)
	}
	return pid, nil
}

// waitPid polls with new connections until an answer names a pid not in
// seen (any pid when seen is empty), the bound passes, the process exits or
// ctx ends. Probe failures are counted in fails.
func waitPid(ctx context.Context, pr *proc, addr string, seen map[int]bool, bound time.Duration, fails map[string]int) (int, error) {
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for {
		pid, err := probe(addr)
		if err == nil && !seen[pid] {
			return pid, nil
		}
		if err != nil && fails != nil {
			fails[loadgen.Classify(err)]++
		}
		select {
		case <-deadline.C:
			return 0, fmt.Errorf("no new pid within %s", bound)
		case <-pr.done:
			return 0, fmt.Errorf("exited: %s", pr.exitState())
		case <-ctx.Done():
			return 0, errors.New(whyDone())
		case <-tick.C:
		}
	}
}

// procStat reads utime+stime (ticks) and the process group of pid.
func procStat(pid int) (cpuTicks int64, pgrp int, comm string, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, "", err
	}
	s := string(data)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < 0 {
		return 0, 0, "", fmt.Errorf("bad /proc/%d/stat", pid)
	}
	comm = s[open+1 : end]
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return 0, 0, "", fmt.Errorf("short /proc/%d/stat", pid)
	}
	pgrp, _ = strconv.Atoi(f[2])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st, pgrp, comm, nil
}

func vmHWM(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// describe names a process: pid, state, parent, command line.
func describe(pid int) string {
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	state, ppid := "?", "?"
	if s := string(st); strings.LastIndexByte(s, ')') >= 0 {
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 1 {
			state, ppid = f[0], f[1]
		}
	}
	return fmt.Sprintf("pid %d state %s ppid %s: %s", pid, state, ppid, strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " ")))
}

// groupMembers lists the live (non-zombie) processes of process group pgid:
// the processes this bench started and their descendants.
func groupMembers(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

// runOne measures one contender. Every error ends its measurement and is
// reported in its column; the cleanup always runs.
func runOne(ctx context.Context, c contender, p params) (r result) {
	r.probeFails = map[string]int{}
	dir, err := os.MkdirTemp("", "hb")
	if err != nil {
		r.err = err.Error()
		return r
	}
	if p.keepDirs {
		r.notes = append(r.notes, "folder kept: "+dir)
	} else {
		defer os.RemoveAll(dir)
	}
	port, err := testutil.FreePort()
	if err != nil {
		r.err = err.Error()
		return r
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := filepath.Join(dir, "bench.cfg")
	if err := os.WriteFile(cfg, []byte(config(dir, addr)), 0o644); err != nil {
		r.err = err.Error()
		return r
	}

	t0 := time.Now()
	pr, err := startProc(c, p, dir, cfg)
	if err != nil {
		r.err = "start: " + err.Error()
		return r
	}
	stopped := false
	defer func() {
		if !stopped {
			// An aborted run: kill the whole group we started, then reap.
			_ = syscall.Kill(-pr.pid, syscall.SIGKILL)
			select {
			case <-pr.done:
			case <-time.After(5 * time.Second):
			}
		}
		if m := groupMembers(pr.pid); len(m) > 0 {
			_ = syscall.Kill(-pr.pid, syscall.SIGKILL)
		}
	}()

	// Peak RSS: VmHWM is per memory image and both supervisors re-execute
	// themselves on reload, so it is sampled all along and the maximum kept.
	var rssMu sync.Mutex
	rssStop := make(chan struct{})
	rssDone := make(chan struct{})
	go func() {
		defer close(rssDone)
		t := time.NewTicker(rssSampleTick)
		defer t.Stop()
		for {
			if v := vmHWM(pr.pid); v > 0 {
				rssMu.Lock()
				r.peakRSSkB = max(r.peakRSSkB, v)
				rssMu.Unlock()
			}
			select {
			case <-rssStop:
				return
			case <-pr.done:
				return
			case <-t.C:
			}
		}
	}()
	stopRSS := func() {
		select {
		case <-rssStop:
		default:
			close(rssStop)
		}
		<-rssDone
	}
	defer stopRSS()

	seen := map[int]bool{}
	first, err := waitPid(ctx, pr, addr, seen, readyBound, nil)
	if err != nil {
		r.err = "no HTTP 200: " + err.Error() + "; log: " + pr.logTail(4)
		return r
	}
	r.startReady = time.Since(t0)
	seen[first] = true

	// Idle CPU of the supervisor: no load, no reloads.
	if p.idle > 0 {
		c0, _, _, err := procStat(pr.pid)
		if err != nil {
			r.err = "idle: " + err.Error()
			return r
		}
		i0 := time.Now()
		t := time.NewTimer(p.idle)
		select {
		case <-t.C:
		case <-pr.done:
			r.err = "exited while idle: " + pr.exitState() + "; log: " + pr.logTail(4)
			return r
		case <-ctx.Done():
			t.Stop()
			r.err = whyDone() + " while idle"
			return r
		}
		c1, _, _, err := procStat(pr.pid)
		if err != nil {
			r.err = "idle: " + err.Error()
			return r
		}
		r.idleFor = time.Since(i0)
		r.idleCPU = float64(c1-c0) / clockTicks
	}

	// Load and reloads.
	lctx, lcancel := context.WithCancel(ctx)
	loadRes := make(chan loadgen.Result, 1)
	l0 := time.Now()
	go func() {
		loadRes <- loadgen.Run(lctx, loadgen.Options{Addr: addr, Workers: p.workers, KeepAlive: p.keepAlive, Timeout: loadTimeout})
	}()
	pace := func() bool { // the pause before each reload and after the last one
		t := time.NewTimer(p.interval)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-pr.done:
		case <-ctx.Done():
		}
		return false
	}
	abort := ""
	for i := 0; i < p.reloads; i++ {
		if !pace() {
			break
		}
		sent := time.Now()
		if err := pr.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
			abort = fmt.Sprintf("signal %d: %v", i+1, err)
			break
		}
		r.signalled++
		pid, err := waitPid(ctx, pr, addr, seen, readyBound, r.probeFails)
		if err != nil {
			if pr.exited() || ctx.Err() != nil {
				abort = fmt.Sprintf("reload %d: %v", i+1, err)
				break
			}
			r.latTimeouts++
			r.notes = append(r.notes, fmt.Sprintf("reload %d: %v (pids seen: %d); log: %s", i+1, err, len(seen), pr.logTail(3)))
			continue
		}
		r.latencies = append(r.latencies, time.Since(sent))
		seen[pid] = true
	}
	if abort == "" {
		pace()
	}
	lcancel()
	r.load = <-loadRes
	r.loadFor = time.Since(l0)
	r.pids = len(seen)
	if pr.exited() {
		abort = "exited during the reloads: " + pr.exitState() + "; log: " + pr.logTail(4)
	} else if ctx.Err() != nil && abort == "" {
		abort = whyDone()
	}
	if abort != "" {
		r.notes = append(r.notes, fmt.Sprintf("aborted after %d of %d reloads: %s", r.signalled, p.reloads, abort))
		if pr.exited() {
			stopped = true
			r.exit = pr.exitState()
			return r
		}
	}

	// Old generations should be gone once the load has stopped: count the
	// group's processes until only the supervisor and one haproxy are left.
	d0 := time.Now()
	n := len(groupMembers(pr.pid))
	for n > 2 && time.Since(d0) < drainBound && ctx.Err() == nil && !pr.exited() {
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-t.C:
		case <-pr.done:
		case <-ctx.Done():
		}
		t.Stop()
		n = len(groupMembers(pr.pid))
	}
	r.drained = fmt.Sprintf("%d procs after %s", n, time.Since(d0).Round(10*time.Millisecond))

	// Stop: SIGTERM to the supervisor alone, until it has exited and we reaped it.
	stopRSS()
	s0 := time.Now()
	if err := pr.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		r.stopNote = "signal: " + err.Error()
	}
	select {
	case <-pr.done:
		r.stop = time.Since(s0)
	case <-time.After(stopBound):
		r.stopNote = fmt.Sprintf("no exit within %s: group killed", stopBound)
		_ = syscall.Kill(-pr.pid, syscall.SIGKILL)
		<-pr.done
	}
	stopped = true
	r.exit = pr.exitState()
	// Processes of the group still alive after the supervisor was reaped.
	left := groupMembers(pr.pid)
	r.leftover = len(left)
	for _, pid := range left {
		r.notes = append(r.notes, "left after the supervisor exited: "+describe(pid))
	}
	return r
}

// --- the table ---

func pct(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.999999) - 1 // nearest rank
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func kinds(m map[string]int) string {
	var ks []string
	for k, v := range m {
		if v > 0 {
			ks = append(ks, fmt.Sprintf("%s=%d", k, v))
		}
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func printTable(w io.Writer, cs []contender, rs []result, p params) {
	type row struct {
		name string
		f    func(r result) string
	}
	loaded := func(f func(r result) string) func(r result) string {
		return func(r result) string {
			if r.loadFor == 0 {
				return "-"
			}
			return f(r)
		}
	}
	rows := []row{
		{"— ratios —", func(result) string { return "" }},
		{"failed per 1,000 requests", loaded(func(r result) string {
			if r.load.Sent == 0 {
				return "-"
			}
			return fmt.Sprintf("%.3f", 1000*float64(r.load.Failed)/float64(r.load.Sent))
		})},
		{"failed per reload", loaded(func(r result) string {
			if r.signalled == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", float64(r.load.Failed)/float64(r.signalled))
		})},
		{"reloads with a new pid / signalled", loaded(func(r result) string {
			return fmt.Sprintf("%d/%d", len(r.latencies), r.signalled)
		})},
		{"throughput (req/s)", loaded(func(r result) string {
			return fmt.Sprintf("%.0f", float64(r.load.Sent)/r.loadFor.Seconds())
		})},
		{"supervisor CPU while idle (% of 1 CPU)", func(r result) string {
			if r.idleFor == 0 {
				return "-"
			}
			return fmt.Sprintf("%.3f%%", 100*r.idleCPU/r.idleFor.Seconds())
		}},
		{"— absolute —", func(result) string { return "" }},
		{"requests sent", loaded(func(r result) string { return strconv.Itoa(r.load.Sent) })},
		{"failed", loaded(func(r result) string { return strconv.Itoa(r.load.Failed) })},
		{"failed kinds", loaded(func(r result) string {
			if k := kinds(r.load.Errors); k != "" {
				return k
			}
			return "-"
		})},
		{"reload latency p50", loaded(func(r result) string { return latOr(r, 0.50) })},
		{"reload latency p95", loaded(func(r result) string { return latOr(r, 0.95) })},
		{"reload latency max", loaded(func(r result) string { return latOr(r, 1) })},
		{"reload latency timeouts (>10s)", loaded(func(r result) string { return strconv.Itoa(r.latTimeouts) })},
		{"probe failures during reloads", loaded(func(r result) string {
			if n := sum(r.probeFails); n > 0 {
				return fmt.Sprintf("%d (%s)", n, kinds(r.probeFails))
			}
			return "0"
		})},
		{"distinct haproxy pids seen", loaded(func(r result) string { return strconv.Itoa(r.pids) })},
		{"load duration", loaded(func(r result) string { return r.loadFor.Round(10 * time.Millisecond).String() })},
		{"start → first HTTP 200", func(r result) string {
			if r.startReady == 0 {
				return "-"
			}
			return ms(r.startReady)
		}},
		{"stop latency (SIGTERM → reaped)", func(r result) string {
			if r.stopNote != "" {
				return r.stopNote
			}
			if r.stop == 0 {
				return "-"
			}
			return ms(r.stop)
		}},
		{"exit status", func(r result) string {
			if r.exit == "" {
				return "-"
			}
			return r.exit
		}},
		{"group procs after load (drain)", func(r result) string {
			if r.drained == "" {
				return "-"
			}
			return r.drained
		}},
		{"group procs left after stop", func(r result) string {
			if r.exit == "" {
				return "-"
			}
			return strconv.Itoa(r.leftover)
		}},
		{"supervisor peak RSS (VmHWM)", func(r result) string {
			if r.peakRSSkB == 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f MiB", float64(r.peakRSSkB)/1024)
		}},
		{"supervisor CPU while idle", func(r result) string {
			if r.idleFor == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f s / %s", r.idleCPU, r.idleFor.Round(10*time.Millisecond))
		}},
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "metric")
	for _, c := range cs {
		fmt.Fprint(tw, "\t"+c.title)
	}
	fmt.Fprintln(tw)
	fmt.Fprint(tw, "status")
	for _, r := range rs {
		s := "ok"
		if r.err != "" {
			s = "ERROR: " + r.err
			if len(s) > 60 {
				s = s[:57] + "..."
			}
		} else if len(r.notes) > 0 && strings.HasPrefix(r.notes[0], "aborted") {
			s = "aborted (see notes)"
		}
		fmt.Fprint(tw, "\t"+s)
	}
	fmt.Fprintln(tw)
	for _, rw := range rows {
		fmt.Fprint(tw, rw.name)
		for _, r := range rs {
			fmt.Fprint(tw, "\t"+rw.f(r))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for i, r := range rs {
		if r.err != "" {
			fmt.Fprintf(w, "%s error: %s\n", cs[i].key, r.err)
		}
		for _, n := range r.notes {
			fmt.Fprintf(w, "%s note: %s\n", cs[i].key, n)
		}
	}
	fmt.Fprintf(w, `How: each contender runs alone, in its own process group and temporary folder, with the same
config (HTTP frontend answering "pid %%pid", stats socket ... expose-fd listeners, hard-stop-after 10s).
A/B: the wrapper with CONFIG, PIDFILE, HAPROXY_WRAPPER_CONTROL_SOCKET, HAPROXY_WRAPPER_RUNTIME_DIR, HAPROXY_BIN
(A also HAPROXY_STATS_SOCKET=<dir>/admin.sock), reloaded with SIGUSR2. C: "haproxy -W -f cfg" (foreground master;
its re-executed master passes the listeners to the new worker itself), reloaded with SIGUSR2 to the master.
Load: %d clients with a new connection per request + %d keep-alive clients (loadgen), during the reloads only.
Reload latency: SIGUSR2 sent -> first answer, on a new connection polled every %s, naming a pid never seen
before; the next reload is signalled %s after that. Idle CPU: utime+stime of the supervisor (the wrapper, the
-W master) over -idle with no load and no reloads. Peak RSS: max of VmHWM of the supervisor sampled every %s
(both re-execute themselves on reload, which resets VmHWM). Stop: SIGTERM to the supervisor only, timed until
its exit was reaped (cmd.Wait).
`, p.workers, p.keepAlive, probeEvery, p.interval, rssSampleTick)
}

func latOr(r result, q float64) string {
	if len(r.latencies) == 0 {
		return "-"
	}
	return ms(pct(r.latencies, q))
}
