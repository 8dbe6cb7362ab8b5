package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/loadgen"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// job is one contender at one size.
type job struct {
	c          contender
	s          size
	paced, b2b int
	interval   time.Duration
	bound      time.Duration // start -> first 200, signal -> new pid
	workers    int           // loadgen load (when kaClients is 0)
	keepAlive  int
	idle       time.Duration
	kaClients  int // > 0: the keep-alive section's raw clients instead of loadgen
	idleClose  bool
}

// result is one job's measurements.
type result struct {
	err         string // set when the job could not be measured
	startReady  time.Duration
	idleCPU     float64 // seconds of utime+stime of the supervisor
	idleFor     time.Duration
	load        loadgen.Result
	ka          kaResult
	loadFor     time.Duration
	signalled   int
	latencies   []time.Duration // paced reloads that showed a new pid
	b2bDone     int             // back-to-back reloads that showed a new pid
	b2bFor      time.Duration   // first back-to-back signal -> last new pid
	latTimeouts int
	notReady    int            // reloads signalled although the supervisor did not catch SIGUSR2 yet (after 5s)
	probeFails  map[string]int // failures of the latency probe itself
	pids        int            // distinct haproxy pids seen answering
	peakRSSkB   int
	drained     string
	stop        time.Duration
	stopNote    string
	exit        string
	leftover    int
	notes       []string
}

// row is a result with what it measured.
type row struct {
	c         contender
	s         size
	idleClose bool
	r         result
}

// runOne measures one job. Every error ends its measurement and is reported
// in its row; the cleanup always runs.
func runOne(ctx context.Context, p params, j job) (r result) {
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
	deadPort, err := testutil.FreePort() // nothing listens there: the backends' servers
	if err != nil {
		r.err = err.Error()
		return r
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg, err := writeConfig(dir, addr, j.s, deadPort, j.idleClose)
	if err != nil {
		r.err = err.Error()
		return r
	}

	t0 := time.Now()
	pr, err := startProc(j.c, p, dir, cfg)
	if err != nil {
		r.err = "start: " + err.Error()
		return r
	}
	stopped := false
	defer func() {
		if !stopped {
			// An aborted run: kill the whole group we started, then reap.
			_ = syscall.Kill(-pr.Pid(), syscall.SIGKILL)
			select {
			case <-pr.Done():
			case <-time.After(5 * time.Second):
			}
		}
		if m := groupMembers(pr.Pid()); len(m) > 0 {
			_ = syscall.Kill(-pr.Pid(), syscall.SIGKILL)
		}
	}()

	// Peak RSS: VmHWM is per memory image and haproxy -W's master
	// re-executes itself on reload, so it is sampled all along and the
	// maximum kept.
	var rssMu sync.Mutex
	rssStop := make(chan struct{})
	rssDone := make(chan struct{})
	go func() {
		defer close(rssDone)
		t := time.NewTicker(rssSampleTick)
		defer t.Stop()
		for {
			if v := vmHWM(pr.Pid()); v > 0 {
				rssMu.Lock()
				r.peakRSSkB = max(r.peakRSSkB, v)
				rssMu.Unlock()
			}
			select {
			case <-rssStop:
				return
			case <-pr.Done():
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
	first, err := waitPid(ctx, pr, addr, seen, j.bound, nil)
	if err != nil {
		r.err = "no HTTP 200: " + err.Error() + "; log: " + pr.logTail(4)
		return r
	}
	r.startReady = time.Since(t0)
	seen[first] = true

	// Idle CPU of the supervisor: no load, no reloads.
	if j.idle > 0 {
		c0, _, _, err := procStat(pr.Pid())
		if err != nil {
			r.err = "idle: " + err.Error()
			return r
		}
		i0 := time.Now()
		t := time.NewTimer(j.idle)
		select {
		case <-t.C:
		case <-pr.Done():
			r.err = "exited while idle: " + pr.exitState() + "; log: " + pr.logTail(4)
			return r
		case <-ctx.Done():
			t.Stop()
			r.err = whyDone() + " while idle"
			return r
		}
		c1, _, _, err := procStat(pr.Pid())
		if err != nil {
			r.err = "idle: " + err.Error()
			return r
		}
		r.idleFor = time.Since(i0)
		r.idleCPU = float64(c1-c0) / clockTicks
	}

	// Load, then the paced reloads, then the back-to-back ones.
	lctx, lcancel := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	l0 := time.Now()
	go func() {
		defer close(loadDone)
		if j.kaClients > 0 {
			r.ka = runKeepAlive(lctx, addr, j.kaClients)
		} else {
			r.load = loadgen.Run(lctx, loadgen.Options{Addr: addr, Workers: j.workers, KeepAlive: j.keepAlive, Timeout: loadTimeout})
		}
	}()
	pace := func() bool {
		t := time.NewTimer(j.interval)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-pr.Done():
		case <-ctx.Done():
		}
		return false
	}
	abort := ""
	// reload signals and waits for a new pid; false ends the reloads.
	reload := func(i int) (time.Duration, bool) {
		if !handlerReady(ctx, pr.Pid()) {
			r.notReady++
		}
		sent := time.Now()
		if err := pr.Cmd.Process.Signal(syscall.SIGUSR2); err != nil {
			abort = fmt.Sprintf("signal %d: %v", i, err)
			return 0, false
		}
		r.signalled++
		pid, err := waitPid(ctx, pr, addr, seen, j.bound, r.probeFails)
		if err != nil {
			if pr.Exited() || ctx.Err() != nil {
				abort = fmt.Sprintf("reload %d: %v", i, err)
				return 0, false
			}
			r.latTimeouts++
			r.notes = append(r.notes, fmt.Sprintf("reload %d: %v (pids seen: %d); log: %s", i, err, len(seen), pr.logTail(3)))
			return 0, true
		}
		seen[pid] = true
		return time.Since(sent), true
	}
	if j.kaClients > 0 {
		pace() // every client connected before the first reload
	}
	for i := 1; i <= j.paced && abort == ""; i++ {
		if !pace() {
			break
		}
		d, ok := reload(i)
		if !ok {
			break
		}
		if d > 0 {
			r.latencies = append(r.latencies, d)
		}
	}
	if abort == "" && j.b2b > 0 && pace() {
		b0 := time.Now()
		for i := 1; i <= j.b2b; i++ {
			d, ok := reload(j.paced + i)
			if !ok {
				break
			}
			if d > 0 {
				r.b2bDone++
			}
		}
		r.b2bFor = time.Since(b0)
	}
	if abort == "" {
		pace()
	}
	lcancel()
	<-loadDone
	r.loadFor = time.Since(l0)
	r.pids = len(seen)
	if pr.Exited() {
		abort = "exited during the reloads: " + pr.exitState() + "; log: " + pr.logTail(4)
	} else if ctx.Err() != nil && abort == "" {
		abort = whyDone()
	}
	if abort != "" {
		r.notes = append(r.notes, fmt.Sprintf("aborted after %d of %d reloads: %s", r.signalled, j.paced+j.b2b, abort))
		if pr.Exited() {
			stopped = true
			r.exit = pr.exitState()
			return r
		}
	}

	// Old generations should be gone once the load has stopped: count the
	// group's processes until only the supervisor and one haproxy are left.
	d0 := time.Now()
	n := len(groupMembers(pr.Pid()))
	for n > 2 && time.Since(d0) < drainBound && ctx.Err() == nil && !pr.Exited() {
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-t.C:
		case <-pr.Done():
		case <-ctx.Done():
		}
		t.Stop()
		n = len(groupMembers(pr.Pid()))
	}
	r.drained = fmt.Sprintf("%d procs after %s", n, time.Since(d0).Round(10*time.Millisecond))

	// Stop: SIGTERM to the supervisor alone, until it has exited and we reaped it.
	stopRSS()
	s0 := time.Now()
	if err := pr.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		r.stopNote = "signal: " + err.Error()
	}
	select {
	case <-pr.Done():
		r.stop = time.Since(s0)
	case <-time.After(stopBound):
		r.stopNote = fmt.Sprintf("no exit within %s: group killed", stopBound)
		_ = syscall.Kill(-pr.Pid(), syscall.SIGKILL)
		<-pr.Done()
	}
	stopped = true
	r.exit = pr.exitState()
	left := groupMembers(pr.Pid())
	r.leftover = len(left)
	for _, pid := range left {
		r.notes = append(r.notes, "left after the supervisor exited: "+describe(pid))
	}
	return r
}

// handlerReady waits, at most 5 s, until the supervisor catches SIGUSR2 and
// does not block it (/proc/pid/status SigCgt, SigBlk): a re-executing
// "haproxy -W" master loses a SIGUSR2 that arrives before its handler is in
// place, and the wrapper catches it from its first instructions. The wait
// counts in the back-to-back time.
func handlerReady(ctx context.Context, pid int) bool {
	bit := uint64(1) << (uint(syscall.SIGUSR2) - 1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return false
		}
		var cgt, blk uint64
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "SigCgt:"); ok {
				cgt, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			}
			if v, ok := strings.CutPrefix(l, "SigBlk:"); ok {
				blk, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			}
		}
		if cgt&bit != 0 && blk&bit == 0 {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(probeEvery)
	}
}
