// Package supervisor is the wrapper's core: one goroutine (Run's loop) owns
// all state. Signals, child exits, helper results (configuration check,
// readiness, binary probe), control requests and timers arrive as values on
// channels; Decide (phase.go) says what each means in the current phase, and
// the loop carries out the actions. Helpers are goroutines that do one
// bounded thing and post one event; the loop counts them and exits only once
// every one has posted. Nothing imports this package but main.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/listeners"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/sdnotify"
	"haproxy-systemd-wrapper/wrapper/internal/settings"
	"haproxy-systemd-wrapper/wrapper/internal/status"
)

// Config is what main hands the supervisor.
type Config struct {
	Settings   settings.Settings
	Inv        haproxy.Invocation
	Bin        string          // haproxy binary
	Self       string          // the wrapper's own binary, for an upgrade
	Argv       []string        // the wrapper's argv, for an upgrade
	Signals    chan os.Signal  // the handled signals, caught since the image started
	DaemonPipe *os.File        // -D: the pipe to the waiting parent
	Control    *control.Server // the control socket (nil: unavailable)
	Lock       *os.File        // the runtime folder's lock, held for life
	Version    string          // the wrapper's version
	// Holder keeps the listening sockets and serves them to -x (nil:
	// unavailable; reloads then take them from the serving generation).
	Holder *listeners.Holder
	// Inherited are the sockets systemd passed (LISTEN_FDS): held from the
	// start, handed to the first generation.
	Inherited []listeners.Socket
}

// state is what crosses an upgrade (see handoff).
type state struct {
	HAProxyVersion  string                `json:"haproxy_version"`
	Mode            haproxy.StartMode     `json:"mode"`
	NoPipe          bool                  `json:"no_pipe"` // haproxy 1.5.0-1.5.18, 1.6: readiness by the pid file only
	Gens            []*generation         `json:"gens"`
	NextGen         int                   `json:"next_gen"`
	StartedAt       time.Time             `json:"started_at"`
	History         []status.ReloadRecord `json:"history"`
	Reloads         int                   `json:"reloads"`
	ReloadsFailed   int                   `json:"reloads_failed"`
	Pending         bool                  `json:"pending"`
	ReloadStarted   time.Time             `json:"reload_started"`
	Trigger         string                `json:"trigger"`
	WrotePIDFile    bool                  `json:"wrote_pidfile"`
	WroteWrapperPID bool                  `json:"wrote_wrapper_pid"`
	NotifyWarned    bool                  `json:"notify_warned"`
	Retired         int                   `json:"retired"`
	Image           imageID               `json:"image"`
	Respawns        int                   `json:"respawns"`
	RespawnTimes    []time.Time           `json:"respawn_times,omitempty"` // in the last minute (HAPROXY_WRAPPER_RESPAWN_LIMIT)
	Held            []heldMeta            `json:"held,omitempty"`          // the held sockets, in the order of the hand-over's files
}

// heldMeta is what an upgrade carries of a held socket besides its
// descriptor.
type heldMeta struct {
	NS     string `json:"ns,omitempty"`
	Iface  string `json:"iface,omitempty"`
	Opts   uint32 `json:"opts,omitempty"`
	Stored string `json:"stored,omitempty"` // its name in systemd's store
}

const historySize = 10

// helper results.
type eventKind int

const (
	evCheckResult eventKind = iota
	evReadyResult
	evProbeResult
	evOldStopped
	evVersion
	evSockets // a serving generation's listening sockets, taken
)

type event struct {
	kind  eventKind
	gen   *generation
	err   error
	text  string             // evVersion: haproxy's version
	mode  haproxy.StartMode  // evVersion: the start mode it implies
	socks []listeners.Socket // evSockets
}

// Supervisor runs haproxy generations.
type Supervisor struct {
	cfg    Config
	phase  Phase
	st     state
	r      *proc.Reaper
	exits  chan proc.Exit
	events chan event
	notify *sdnotify.Notifier
	ctl    *control.Server

	helpers    int // helpers started whose event is not handled yet
	helperCtx  context.Context
	helperStop context.CancelFunc

	snapReqs chan chan status.Report
	bg       sync.WaitGroup // status and watchdog goroutines

	starting       *generation // a generation started, not serving yet
	noX            bool        // this reload retries without -x
	waiters        []*control.Request
	pendingWaiters []*control.Request
	lastFailed     unix.WaitStatus // exit status of the last generation that failed to start
	lostServing    bool            // the serving generation died during a reload

	stopSig   unix.Signal
	exitCode  int // -1 until decided
	stopKill  *time.Timer
	extend    *time.Ticker
	statusKck chan struct{}
	image     imageID
	drainTick *time.Ticker // checks HAPROXY_WRAPPER_MAX_DRAIN_AGE

	holder     *listeners.Holder
	stored     map[uint64]string // held socket inode -> its name in systemd's store
	crashWS    unix.WaitStatus   // how the generation a respawn replaces ended
	graceTimer *time.Timer       // HAPROXY_WRAPPER_STOP_GRACE
	graceSig   unix.Signal
	forking    bool         // the -D daemon (Type=forking): see restoreAll
	restore    *time.Ticker // forking: the store is sent again a few times
	restores   int
}

// New returns a supervisor for a first start.
func New(cfg Config) *Supervisor {
	s := &Supervisor{
		cfg:       cfg,
		r:         proc.NewReaper(),
		exits:     make(chan proc.Exit, 1024),
		events:    make(chan event, 64),
		notify:    sdnotify.New(cfg.Settings.NotifySocket),
		snapReqs:  make(chan chan status.Report),
		exitCode:  -1,
		statusKck: make(chan struct{}, 1),
		image:     runningImage(),
	}
	s.helperCtx, s.helperStop = context.WithCancel(context.Background())
	s.ctl = cfg.Control
	s.holder = cfg.Holder
	s.stored = map[uint64]string{}
	s.forking = cfg.DaemonPipe != nil
	if s.holder != nil && len(cfg.Inherited) > 0 {
		added := s.holder.Add(cfg.Inherited)
		names := make([]string, len(added))
		for i, a := range added {
			names[i] = a.Describe()
			if listeners.IsStoreName(a.Name) {
				// In systemd's store already: removed from it when no
				// bind line uses it any more.
				s.stored[a.Ino()] = a.Name
			}
		}
		logx.Infof("holding %d listening socket(s) passed by systemd, for the first generation: %s", len(added), strings.Join(names, ", "))
	} else {
		listeners.CloseAll(cfg.Inherited)
	}
	return s
}

// helper runs f in a goroutine that the loop waits for; f's event is
// handled by the loop.
func (s *Supervisor) helper(f func() event) {
	s.helpers++
	go func() { s.events <- f() }()
}

// Run is the whole life of the wrapper: start (or resume after an upgrade),
// loop, clean up. It returns the exit code.
func (s *Supervisor) Run(resumed bool) int {
	ctx, cancel := context.WithCancel(context.Background())
	reaperDone := make(chan struct{})
	go func() { s.r.Run(ctx); close(reaperDone) }()
	defer func() { cancel(); <-reaperDone }()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		logx.Warningf("cannot become child subreaper: %v", err)
	}
	if resumed {
		s.phase = Reloading
		logx.Infof("re-executed: %d haproxy generation(s) kept, the reload goes on", len(s.st.Gens))
		s.handle(EvReloadHere, evCtx{}) // "not upgrading any more": spawn the new generation here
	} else {
		s.phase = Starting
		s.begin()
	}
	if age := s.cfg.Settings.MaxDrainAge; age > 0 {
		s.drainTick = time.NewTicker(max(min(age/4, time.Second), 10*time.Millisecond))
		defer s.drainTick.Stop()
	}
	if s.holder != nil {
		go s.holder.Serve() // ends with holder.Close in cleanup
	}
	bgCtx, bgCancel := context.WithCancel(context.Background())
	s.bg.Add(2)
	go func() { defer s.bg.Done(); s.runStatus(bgCtx) }()
	go func() { defer s.bg.Done(); s.runWatchdog(bgCtx) }()
	code := s.loop()
	bgCancel()
	s.bg.Wait()
	s.cleanup()
	return code
}

// begin starts the first start's helper: "haproxy -v" (a stop during it
// kills it), then the configuration check, then the first generation.
func (s *Supervisor) begin() {
	hctx, bin, cache := s.helperCtx, s.cfg.Bin, s.cfg.Settings.VersionCache
	s.helper(func() event {
		if full, ok := haproxy.CachedVersion(cache, bin); ok {
			if major, minor, _, err := haproxy.ParseVersion("HAProxy version " + full); err == nil {
				logx.Debugf("haproxy %s: version from HAPROXY_WRAPPER_VERSION_CACHE %s", full, cache)
				return event{kind: evVersion, text: full, mode: haproxy.ModeFor(major, minor)}
			}
		}
		ctx, cancel := context.WithTimeout(hctx, 30*time.Second)
		defer cancel()
		out, ws, err := s.r.RunCapture(ctx, bin, []string{bin, "-v"}, proc.ChildEnv(os.Environ()))
		if err != nil {
			return event{kind: evVersion, err: err}
		}
		major, minor, full, perr := haproxy.ParseVersion(out)
		if perr != nil {
			return event{kind: evVersion, err: fmt.Errorf("%s -v (%s): %w: set HAPROXY_BIN to a haproxy binary", bin, proc.DescribeStatus(ws), perr)}
		}
		if err := haproxy.RememberVersion(cache, bin, full); err != nil {
			logx.Warningf("HAPROXY_WRAPPER_VERSION_CACHE: %v", err)
		}
		return event{kind: evVersion, text: full, mode: haproxy.ModeFor(major, minor)}
	})
}

// versionKnown goes on with the first start once haproxy's version is known.
func (s *Supervisor) versionKnown(ev event) {
	if s.phase != Starting {
		return // stopping: nothing was started
	}
	if ev.err != nil {
		s.handle(EvStartFailed, evCtx{reason: ev.err.Error(), code: startExitCode(ev.err)})
		return
	}
	s.st.HAProxyVersion = ev.text
	s.st.Mode = ev.mode
	if ev.mode == haproxy.ModeLegacy {
		s.releaseForLegacy()
	}
	s.st.NoPipe = ev.mode == haproxy.ModeLegacy && !haproxy.LegacyPipe(ev.text)
	s.st.StartedAt = time.Now()
	s.st.Image = s.image
	ready := ""
	if s.st.NoPipe {
		ready = ", ready when its pid file names its live processes (no HAPROXY_WRAPPER_FD before 1.5.19 and in 1.6)"
	}
	logx.Infof("haproxy %s (%s), start mode %s%s", ev.text, s.cfg.Bin, s.st.Mode, ready)
	s.notify.Status("starting haproxy " + ev.text)
	s.startCheck(false)
}

// startCheck runs the configuration check as a helper, or posts its
// success at once when the check is off.
func (s *Supervisor) startCheck(reload bool) {
	hctx := s.helperCtx
	var paths []string
	if reload {
		paths = configPaths(s.cfg.Inv.Args) // a first start has nothing to lose: no wait
	}
	check := s.cfg.Settings.CheckConfig
	s.helper(func() event {
		if waited := waitAtRest(hctx, paths, time.Now); waited > 0 {
			logx.Infof("the configuration changed %s ago or less: waited %s for it to be at rest", atRestQuiet, waited.Round(time.Millisecond))
		}
		if !check || hctx.Err() != nil {
			return event{kind: evCheckResult}
		}
		return event{kind: evCheckResult, err: s.check(hctx)}
	})
}

// startExitCode maps a start error to the exit code of the README.
func startExitCode(err error) int {
	var se *proc.SpawnError
	if errors.As(err, &se) {
		return se.ExitCode()
	}
	var ce *configError
	if errors.As(err, &ce) {
		if c := proc.StatusCode(ce.ws); c != 0 {
			return c
		}
	}
	return proc.ExitStartFailed
}

// loop is the event loop; it returns the exit code.
func (s *Supervisor) loop() int {
	for s.phase != Done || s.helpers > 0 {
		s.step(true)
	}
	if s.exitCode >= 0 {
		return s.exitCode
	}
	return proc.ExitOK // a requested stop that ended cleanly, or before any haproxy ran
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// step handles one event. With wait it blocks until one comes; without, it
// returns false once nothing is queued.
func (s *Supervisor) step(wait bool) bool {
	var nothing chan struct{}
	if !wait {
		nothing = closedChan
	}
	var reqs <-chan *control.Request
	if s.ctl != nil {
		reqs = s.ctl.Requests()
	}
	var stopKill, extend, drainTick, grace, restore <-chan time.Time
	if s.graceTimer != nil {
		grace = s.graceTimer.C
	}
	if s.restore != nil {
		restore = s.restore.C
	}
	if s.drainTick != nil {
		drainTick = s.drainTick.C
	}
	if s.stopKill != nil {
		stopKill = s.stopKill.C
	}
	if s.extend != nil {
		extend = s.extend.C
	}
	select {
	case sig := <-s.cfg.Signals:
		s.onSignal(sig.(unix.Signal))
	case ex := <-s.exits:
		s.onExit(ex)
	case ex := <-s.r.Other():
		s.onOther(ex)
	case ev := <-s.events:
		s.helpers--
		s.onEvent(ev)
	case req := <-reqs:
		s.onRequest(req)
	case reply := <-s.snapReqs:
		reply <- s.report()
	case <-stopKill:
		logx.Warningf("haproxy still running %s after the stop: SIGKILL", s.cfg.Settings.StopTimeout)
		s.signalGens(s.st.Gens, unix.SIGKILL)
	case <-grace:
		s.graceOver()
	case <-restore:
		s.restoreAll()
	case <-extend:
		s.notify.ExtendTimeout(10 * time.Second)
	case now := <-drainTick:
		s.enforceDrainLimits(now)
	case <-nothing:
		// select picks at random among ready cases: "nothing" is believed
		// only when every queue is empty.
		return len(s.cfg.Signals)+len(s.exits)+len(s.events)+len(reqs)+len(s.r.Other()) > 0
	}
	return true
}

// evCtx carries what an action needs to know of its event.
type evCtx struct {
	gen    *generation
	reason string
	code   int // exit code for a failed first start
	ws     unix.WaitStatus
	sig    unix.Signal
	req    *control.Request
	why    string
	// requested: the stop was asked for by a signal (SIGTERM, SIGINT,
	// SIGUSR1), not decided by the wrapper (haproxy died, did not start).
	requested bool
}

// handle runs the transition for e and carries out its actions.
func (s *Supervisor) handle(e Event, c evCtx) {
	from := s.phase
	next, acts := Decide(from, e)
	s.phase = next
	if len(acts) > 0 || from != next {
		logx.Debugf("%s + %s -> %s %v", from, e, next, acts)
	}
	for _, a := range acts {
		s.do(a, &c)
	}
}

func (s *Supervisor) do(a Action, c *evCtx) {
	switch a {
	case ActQueueReload:
		if !s.st.Pending {
			logx.Infof("reload (%s) queued behind the one in progress", c.why)
		}
		s.st.Pending = true
		if c.req != nil {
			s.pendingWaiters = append(s.pendingWaiters, c.req)
		}
	case ActRefuseReload:
		logx.Infof("reload (%s) ignored: stopping", c.why)
		c.req.Answer(false, "the wrapper is stopping")
	case ActBeginReload:
		if c.req != nil {
			s.waiters = append(s.waiters, c.req)
		}
		s.beginReload(c.why)
	case ActSpawnOrUpgrade:
		if s.st.Trigger != triggerRespawn && s.upgradeWanted() {
			s.startProbe()
			return
		}
		s.spawnReload()
	case ActSpawn:
		if s.phase == Starting {
			if err := s.spawn(false, false); err != nil {
				s.handle(EvStartFailed, evCtx{reason: err.Error(), code: startExitCode(err)})
			}
			return
		}
		s.spawnReload()
	case ActFirstReady:
		s.firstReady(c.gen)
	case ActReloadDone:
		s.reloadSettled(true, "", c.gen)
	case ActReloadFailed:
		reason := c.reason
		if reason == "" {
			reason = "the wrapper is stopping"
		}
		s.reloadSettled(false, reason, nil)
	case ActStartFailed:
		logx.Errorf("haproxy did not start: %s", c.reason)
		s.daemonDone(c.reason)
		s.notify.Status("haproxy did not start: " + c.reason)
		if s.exitCode < 0 {
			s.exitCode = c.code
			if s.exitCode == 0 {
				s.exitCode = proc.ExitStartFailed
			}
		}
		c.why = "haproxy did not start: " + c.reason
		c.sig = unix.SIGTERM
	case ActForwardStop:
		s.forwardStop(c.sig, c.why, c.requested)
	case ActKillAll:
		logx.Errorf("SIGABRT received (systemd watchdog timeout?): SIGKILL to every haproxy generation, exiting")
		s.notify.Stopping("aborted: watchdog timeout")
		s.signalGens(s.st.Gens, unix.SIGKILL)
		s.helperStop()
		s.exitCode = 128 + int(unix.SIGABRT)
	case ActServingLost:
		code := proc.StatusCode(c.ws)
		if code == 0 && s.lastFailed != 0 {
			code = proc.StatusCode(s.lastFailed)
		}
		if code == 0 && c.why != "none-left" {
			code = proc.ExitStartFailed
		}
		if s.exitCode < 0 {
			s.exitCode = code
		}
		if c.why == "none-left" {
			logx.Warningf("no haproxy left running: exiting")
		} else {
			logx.Errorf("nothing serves any more (%s): stopping, exit code %d", c.reason, code)
		}
	case ActRetire:
		if c.gen != nil {
			logx.Infof("haproxy generation %d (pid %d) ended: %s", c.gen.Gen, c.gen.Pid, proc.DescribeStatus(c.ws))
			s.kickStatus()
		}
	case ActNextReload:
		if s.st.Pending {
			s.st.Pending = false
			s.waiters = s.pendingWaiters
			s.pendingWaiters = nil
			s.handle(EvReload, evCtx{why: "queued"})
		}
	case ActExit:
		s.helperStop()
		s.stopExtend()
	case ActRespawn:
		s.beginRespawn(c.gen, c.ws)
	}
}

func (s *Supervisor) onSignal(sig unix.Signal) {
	c := evCtx{sig: sig, why: unix.SignalName(sig), requested: sig == unix.SIGTERM || sig == unix.SIGINT || sig == unix.SIGUSR1}
	switch sig {
	case unix.SIGUSR2, unix.SIGHUP:
		s.handle(EvReload, c)
	case unix.SIGTERM, unix.SIGINT:
		c.why += " received"
		s.handle(EvStop, c)
	case unix.SIGUSR1:
		if s.phase == Stopping {
			logx.Infof("SIGUSR1 ignored: already stopping")
			return
		}
		c.why = "SIGUSR1 received, letting connections finish"
		s.handle(EvGracefulStop, c)
	case unix.SIGABRT:
		s.handle(EvAbort, c)
	}
}

func (s *Supervisor) onRequest(req *control.Request) {
	switch req.Kind {
	case control.Status:
		req.Snapshot <- s.report()
	case control.Reload:
		s.handle(EvReload, evCtx{req: req, why: "reload command"})
	}
}

// onOther is the exit of a process nobody registered: a daemonized
// descendant adopted as subreaper (never a source of the exit code).
func (s *Supervisor) onOther(ex proc.Exit) {
	logx.Debugf("reaped pid %d (%s)", ex.Pid, proc.DescribeStatus(ex.WS))
}

func (s *Supervisor) onExit(ex proc.Exit) {
	g := s.findGen(ex.Pid)
	if g == nil {
		logx.Debugf("reaped pid %d (%s)", ex.Pid, proc.DescribeStatus(ex.WS))
		return
	}
	wasServing := g.Ready && !g.Draining
	s.removeGen(g)
	c := evCtx{gen: g, ws: ex.WS}
	switch {
	case g == s.starting:
		s.starting = nil
		s.stopExtend()
		g.out.Settle(500 * time.Millisecond)
		out := g.out.Text()
		if (s.phase == Reloading || s.phase == Starting) && g.WithX && !s.noX && haproxy.SocketTransferFailed(out) {
			logx.Warningf("haproxy generation %d could not take the listening sockets over -x %s (%s): retrying without socket handover, connections may be reset",
				g.Gen, g.XSock, haproxy.SummarizeCheck(out))
			s.noX = true
			if s.phase == Starting {
				if err := s.spawn(false, true); err != nil {
					s.handle(EvStartFailed, evCtx{reason: err.Error(), code: startExitCode(err)})
				}
			} else {
				s.spawnReload()
			}
			break
		}
		c.reason = fmt.Sprintf("haproxy generation %d (pid %d) exited during start: %s", g.Gen, g.Pid, proc.DescribeStatus(ex.WS))
		if g.failure != nil {
			c.reason = fmt.Sprintf("haproxy generation %d (pid %d): %v", g.Gen, g.Pid, g.failure)
		}
		if strings.TrimSpace(out) != "" {
			c.reason += ": " + haproxy.SummarizeCheck(out)
		}
		c.code = proc.StatusCode(ex.WS)
		if g.failure != nil {
			c.code = proc.ExitStartFailed
		}
		s.lastFailed = ex.WS
		if s.phase == Stopping {
			s.stopExit(g, ex.WS)
		}
		s.handle(EvStartFailed, c)
	case wasServing:
		if s.phase == Stopping {
			s.stopExit(g, ex.WS)
			s.handle(EvServingDied, c)
			break
		}
		if s.phase == Serving && s.canRespawn(ex.WS, time.Now()) {
			s.handle(EvRespawn, c)
			break
		}
		c.reason = fmt.Sprintf("haproxy generation %d (pid %d) died: %s", g.Gen, g.Pid, proc.DescribeStatus(ex.WS))
		if s.phase == Reloading || s.phase == Upgrading {
			s.lostServing = true
			if s.starting != nil && ex.WS.Exited() && ex.WS.ExitStatus() == 0 {
				// The usual end of a reload: the new generation told
				// this one to stop (-sf) before it answered us.
				c.reason = ""
			} else {
				s.lastFailed = ex.WS
				logx.Errorf("%s", c.reason)
			}
		} else {
			logx.Errorf("%s", c.reason)
		}
		s.handle(EvServingDied, c)
	default:
		if s.phase == Stopping {
			s.stopExit(g, ex.WS)
		}
		s.handle(EvOldExited, c)
	}
	s.checkNoneLeft(ex.WS)
}

// stopExit records a generation's end during a stop: the first that did not
// end the way a stop ends it gives the exit code.
func (s *Supervisor) stopExit(g *generation, ws unix.WaitStatus) {
	sig := s.stopSig
	if g != nil && g.stopSig != 0 {
		sig = g.stopSig
	}
	if s.exitCode < 0 {
		if c := proc.StopCode(ws, sig); c != 0 {
			s.exitCode = c
		}
	}
}

// checkNoneLeft posts EvNoneLeft once no generation is left (and none is
// about to be: during a first start's check nothing runs yet).
func (s *Supervisor) checkNoneLeft(ws unix.WaitStatus) {
	if len(s.st.Gens) > 0 || s.starting != nil {
		return
	}
	if s.phase == Reloading && s.st.Trigger == triggerRespawn {
		return // its new generation is on its way, from the held sockets
	}
	switch s.phase {
	case Starting, Done:
		return
	case Serving:
		s.handle(EvNoneLeft, evCtx{ws: ws, why: "none-left"})
	default:
		s.handle(EvNoneLeft, evCtx{ws: ws, reason: "no haproxy left during the reload"})
	}
}

func (s *Supervisor) onEvent(ev event) {
	switch ev.kind {
	case evVersion:
		s.versionKnown(ev)
	case evCheckResult:
		if s.phase != Starting && s.phase != Reloading {
			return // stopping: the check was cancelled
		}
		if ev.err != nil {
			if s.phase == Starting {
				s.handle(EvStartFailed, evCtx{reason: ev.err.Error(), code: startExitCode(ev.err)})
				return
			}
			s.handle(EvStartFailed, evCtx{reason: ev.err.Error()})
			return
		}
		s.handle(EvCheckPassed, evCtx{})
	case evReadyResult:
		g := ev.gen
		if g != s.starting {
			return // already settled (the process exited first)
		}
		if s.phase == Stopping {
			return // its exit settles it
		}
		if ev.err != nil {
			// Our unreaped child: its pid is ours to kill. Its exit
			// settles the start as failed, with its output.
			g.failure = ev.err
			_ = unix.Kill(g.Pid, unix.SIGKILL)
			return
		}
		if s.st.Mode == haproxy.ModeForeground {
			if n, err := haproxy.Listeners(g.Pid, g.ReadySock); err == nil && n == 0 {
				// haproxy alone refuses a configuration without any
				// listener; only the readiness socket let it start.
				g.failure = errors.New("the configuration has no listener (haproxy alone refuses it: \"No enabled listener found\"): check its 'bind' lines")
				_ = unix.Kill(g.Pid, unix.SIGKILL)
				return
			}
		}
		g.cancel()
		var stopping []int
		for _, o := range s.st.Gens {
			if o != g && !o.Draining {
				o.Draining = true
				o.DrainFrom = time.Now()
				if s.st.Mode == haproxy.ModeForeground {
					// haproxy's own -sf, sent by the wrapper once the
					// new generation serves (haproxy.ChildArgs).
					s.signalGens([]*generation{o}, unix.SIGUSR1)
					stopping = append(stopping, s.targets([]*generation{o})...)
				}
			}
		}
		if len(stopping) == 0 {
			s.took(g)
			return
		}
		// The reload is done once the old generations stopped accepting:
		// a request sent after "reload" returned reaches the new one.
		s.helper(func() event {
			return event{kind: evOldStopped, gen: g, err: waitStoppedListening(stopping, oldStopTimeout)}
		})
	case evOldStopped:
		if ev.gen != s.starting || s.phase == Stopping {
			return
		}
		if ev.err != nil {
			logx.Warningf("%v: the reload counts as done", ev.err)
		}
		s.took(ev.gen)
	case evSockets:
		s.holdSockets(ev.gen, ev.socks, ev.err)
	case evProbeResult:
		if s.phase != Reloading {
			return
		}
		if ev.err != nil {
			logx.Warningf("new wrapper binary %s refused: %v: reloading in the running image", s.cfg.Self, ev.err)
			s.handle(EvReloadHere, evCtx{})
			return
		}
		s.upgrade()
	}
}

func (s *Supervisor) writePIDFile(pid int) {
	if err := proc.WritePIDFile(s.cfg.Inv.PIDFile, []int{pid}); err != nil {
		// Never leave a pid file naming a pid that is not serving.
		if rerr := os.Remove(s.cfg.Inv.PIDFile); rerr == nil || os.IsNotExist(rerr) || errors.Is(rerr, unix.ENOTDIR) {
			logx.Warningf("%v: haproxy serves, its pid file was removed rather than left naming an old pid: free the space or set PIDFILE to a writable path", err)
		} else {
			logx.Warningf("%v: haproxy serves, but its old pid file could not be removed either (%v): set PIDFILE to a writable path", err, rerr)
		}
		s.st.WrotePIDFile = false
		return
	}
	s.st.WrotePIDFile = true
}

func (s *Supervisor) firstReady(g *generation) {
	logx.Noticef("haproxy %s serving: generation %d, pid %d, ready in %s", s.st.HAProxyVersion, g.Gen, g.Pid, time.Since(g.Started).Round(time.Millisecond))
	s.notify.Ready(s.report().Line(), os.Getpid())
	s.daemonDone("")
	s.kickStatus()
}

// beginReload starts a reload: RELOADING=1, then the check (or not).
func (s *Supervisor) beginReload(trigger string) {
	s.noX = false
	s.st.ReloadStarted = time.Now()
	s.st.Trigger = trigger
	logx.Noticef("reloading (%s)", trigger)
	s.notify.Reloading("reloading haproxy (" + trigger + ")")
	s.startCheck(true)
}

func (s *Supervisor) spawnReload() {
	if s.phase != Reloading {
		return
	}
	if err := s.spawn(true, s.noX); err != nil {
		s.handle(EvStartFailed, evCtx{reason: err.Error()})
		return
	}
	s.startExtend()
}

func (s *Supervisor) startExtend() {
	if s.extend == nil {
		s.extend = time.NewTicker(5 * time.Second)
	}
}

func (s *Supervisor) stopExtend() {
	if s.extend != nil {
		s.extend.Stop()
		s.extend = nil
	}
}

// reloadSettled records a reload's outcome, tells systemd and the waiters.
func (s *Supervisor) reloadSettled(ok bool, reason string, g *generation) {
	if s.st.Trigger == triggerRespawn {
		s.respawnSettled(ok, reason, g)
		return
	}
	rec := status.ReloadRecord{At: s.st.ReloadStarted, Duration: time.Since(s.st.ReloadStarted), OK: ok, Error: reason, Trigger: s.st.Trigger}
	if sv := s.serving(); sv != nil {
		rec.Gen = sv.Gen
	}
	s.st.Reloads++
	if !ok {
		s.st.ReloadsFailed++
	}
	s.st.History = append(s.st.History, rec)
	if len(s.st.History) > historySize {
		s.st.History = s.st.History[len(s.st.History)-historySize:]
	}
	sv := s.serving()
	switch {
	case ok:
		logx.Noticef("reload done: generation %d serving (pid %d) in %s", g.Gen, g.Pid, rec.Duration.Round(time.Millisecond))
	case sv != nil && !s.lostServing:
		logx.Errorf("reload failed, generation %d (pid %d) keeps serving: %s", sv.Gen, sv.Pid, reason)
	default:
		logx.Errorf("reload failed: %s", reason)
	}
	s.notify.Ready(s.report().Line(), os.Getpid())
	for _, w := range s.waiters {
		if ok {
			w.Answer(true, fmt.Sprintf("generation %d serving (pid %d)", g.Gen, g.Pid))
		} else {
			w.Answer(false, reason)
		}
	}
	s.waiters = nil
	s.kickStatus()
	if !ok && sv == nil && s.phase != Stopping {
		s.handle(EvServingDied, evCtx{reason: "the serving generation died during the reload", ws: s.lastFailed})
	}
}

// respawnSettled ends a respawn: the new generation serves, or the wrapper
// stops with the dead generation's status.
func (s *Supervisor) respawnSettled(ok bool, reason string, g *generation) {
	s.st.Trigger = ""
	if ok {
		logx.Noticef("respawned: generation %d serving (pid %d) in %s", g.Gen, g.Pid, time.Since(s.st.ReloadStarted).Round(time.Millisecond))
		s.notify.Ready(s.report().Line(), os.Getpid())
		s.kickStatus()
		return
	}
	if s.phase == Stopping {
		logx.Infof("respawn abandoned: %s", reason)
	} else {
		logx.Errorf("respawn failed: %s", reason)
	}
	for _, w := range s.waiters {
		w.Answer(false, "haproxy died and could not be respawned: "+reason)
	}
	s.waiters = nil
	if s.serving() == nil && s.phase != Stopping {
		s.handle(EvServingDied, evCtx{reason: "haproxy died and could not be respawned: " + reason, ws: s.crashWS})
	}
}

// forwardStop sends the stop signal to every generation and ends helpers.
func (s *Supervisor) forwardStop(sig unix.Signal, why string, requested bool) {
	if sig == 0 {
		sig = unix.SIGTERM
	}
	first := s.stopSig == 0
	s.stopSig = sig
	s.st.Pending = false
	soft := first && requested && s.softStop(sig)
	if len(s.st.Gens) > 0 || s.starting != nil {
		shown := sig
		if soft {
			shown = unix.SIGUSR1
		}
		logx.Noticef("stopping (%s): %s to every haproxy generation", why, unix.SignalName(shown))
	}
	if strings.HasPrefix(why, "haproxy did not start") {
		s.notify.Stopping(why)
	} else {
		s.notify.Stopping("stopping: " + why)
	}
	for _, w := range append(s.waiters, s.pendingWaiters...) {
		w.Answer(false, "the wrapper is stopping")
	}
	s.waiters, s.pendingWaiters = nil, nil
	s.daemonDone("stopped before haproxy was ready")
	s.helperStop()
	for _, g := range s.st.Gens {
		if !g.Ready && g.cancel != nil {
			// A starting generation is stopped like the others; its
			// readiness wait ends now.
			g.cancel()
		}
	}
	if n := s.holder.Release(); n > 0 {
		// Only haproxy's copies (and systemd's store, for a restart)
		// keep the ports open now.
		logx.Infof("released %d held listening socket(s)", n)
	}
	for _, g := range s.st.Gens {
		g.stopSig = sig
		if soft && g.Ready {
			g.stopSig = unix.SIGUSR1
		}
		if g.stopSig == unix.SIGUSR1 && !g.Ready {
			// A generation that does not serve yet has no connection to
			// let finish: it is stopped, not soft-stopped (and haproxy
			// may not have its SIGUSR1 handler yet).
			g.stopSig = unix.SIGTERM
		}
		s.signalGens([]*generation{g}, g.stopSig)
	}
	if s.cfg.Settings.StopTimeout > 0 && s.stopKill == nil {
		s.stopKill = time.NewTimer(s.cfg.Settings.StopTimeout)
	}
	if len(s.st.Gens) == 0 && s.starting == nil {
		s.handle(EvNoneLeft, evCtx{})
	}
}

// cleanup removes what the wrapper created and joins what it started.
func (s *Supervisor) cleanup() {
	if s.stopKill != nil {
		s.stopKill.Stop()
	}
	if s.graceTimer != nil {
		s.graceTimer.Stop()
	}
	if s.restore != nil {
		s.restore.Stop()
	}
	s.holder.Close()
	// Descendants adopted as subreaper (e.g. workers of a killed haproxy)
	// are the wrapper's own children: end them, never leave them.
	for _, p := range proc.ChildrenOf(os.Getpid()) {
		if proc.Alive(p) {
			logx.Warningf("pid %d (an adopted haproxy descendant) still running at exit: SIGTERM", p)
			_ = unix.Kill(p, unix.SIGTERM)
		}
	}
	if s.st.WrotePIDFile {
		_ = os.Remove(s.cfg.Inv.PIDFile)
	}
	if s.st.WroteWrapperPID {
		_ = os.Remove(s.cfg.Settings.WrapperPID)
	}
	for _, g := range s.st.Gens {
		g.removeFiles()
	}
	if s.ctl != nil {
		s.ctl.Close()
	}
}

// daemonDone tells a waiting -D parent the outcome of the first start, once:
// "" is success (the wrapper pid file is written first).
func (s *Supervisor) daemonDone(reason string) {
	p := s.cfg.DaemonPipe
	if p == nil {
		return
	}
	s.cfg.DaemonPipe = nil
	defer p.Close()
	if reason == "" {
		if err := proc.WritePIDFile(s.cfg.Settings.WrapperPID, []int{os.Getpid()}); err == nil {
			s.st.WroteWrapperPID = true
		} else {
			reason = fmt.Sprintf("%v: set HAPROXY_WRAPPER_PIDFILE to a writable path", err)
			logx.Errorf("%s", reason)
			s.exitCode = proc.ExitStartFailed
			go func() { s.cfg.Signals <- unix.SIGTERM }()
		}
	}
	if reason == "" {
		fmt.Fprintln(p, "ok")
		return
	}
	fmt.Fprintf(p, "error %s\n", strings.ReplaceAll(reason, "\n", " "))
}

// took completes a generation's start: it serves, alone.
func (s *Supervisor) took(g *generation) {
	s.starting = nil
	s.stopExtend()
	g.Ready = true
	s.enforceDrainLimits(time.Now())
	if s.st.Mode == haproxy.ModeLegacy {
		pids, _, _ := proc.ReadPIDFile(s.cfg.Inv.PIDFile)
		g.Workers, _ = proc.FilterOwn(pids, s.own)
	} else {
		s.writePIDFile(g.Pid)
		s.fetchSockets(g)
	}
	s.lostServing = false
	s.handle(EvReady, evCtx{gen: g})
}

// oldStopTimeout bounds the wait for soft-stopped generations to close
// their listeners (haproxy's "grace" keeps them open on purpose).
const oldStopTimeout = 2 * time.Second

// waitStoppedListening waits until none of pids holds a listening socket
// (or is gone), polling /proc with a back-off from 100 µs to 2 ms, at most d.
func waitStoppedListening(pids []int, d time.Duration) error {
	deadline := time.Now().Add(d)
	wait := 100 * time.Microsecond
	for {
		left := 0
		for _, p := range pids {
			if n, err := haproxy.Listeners(p); err == nil && n > 0 {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d old haproxy process(es) still listening %s after SIGUSR1 (a 'grace' setting?)", left, d)
		}
		time.Sleep(wait)
		wait = min(wait*2, 2*time.Millisecond)
	}
}
