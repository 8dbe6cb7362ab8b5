package supervisor

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/handoff"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// The loop: the one goroutine that owns the state. step takes one thing
// from a channel as an Event: a signal by signalEvents, the configuration
// check's result as it comes (evDecided), the rest through onRequest,
// onExit and onEvent; handle asks Decide (phase.go) and carries out the
// actions, calling the stage files below (start, reload, respawn, stop,
// upgrade). Only this file calls handle: a stage's function that leads to
// another event returns it (a *follow) and then handles it here.

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
		if in, ok := signalEvents[sig]; ok {
			s.handle(in.ev, in.c)
		}
	case ex := <-s.exits:
		s.onExit(ex)
	case ex := <-s.r.Other():
		// A process nobody registered: a daemonized descendant adopted as
		// subreaper (never a source of the exit code).
		logx.Debugf("reaped pid %d (%s)", ex.Pid, proc.DescribeStatus(ex.WS))
	case ev := <-s.events:
		s.helpers--
		if ev.kind == evDecided {
			s.handle(ev.decided.ev, ev.decided.c)
		} else {
			s.onEvent(ev)
		}
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

// then handles the event a stage's function handed back, if any.
func (s *Supervisor) then(f *follow) {
	if f != nil {
		s.handle(f.ev, f.c)
	}
}

// handle runs the transition for e (Decide) and carries out its actions in
// order.
func (s *Supervisor) handle(e Event, c evCtx) {
	from := s.phase
	next, acts := Decide(from, e)
	s.phase = next
	if len(acts) > 0 || from != next {
		logx.Debugf("%s + %s -> %s %v", from, e, next, acts)
	} else if c.sig != 0 {
		logx.Infof("%s ignored: the wrapper is %s", unix.SignalName(c.sig), from)
	}
	for _, a := range acts {
		switch a {
		case ActQueueReload:
			s.queueReload(c.why, c.req)
		case ActRefuseReload:
			logx.Infof("reload (%s) ignored: stopping", c.why)
			c.req.Answer(false, "the wrapper is stopping")
		case ActBeginReload:
			s.beginReload(c.why, c.req)
		case ActSpawnOrUpgrade, ActSpawn:
			if a == ActSpawnOrUpgrade && s.st.Trigger != triggerRespawn && s.upgradeWanted() {
				s.startProbe() // upgrade.go; the loop's part is upgrade below
				continue
			}
			if err := s.spawn(); err != nil {
				s.handle(EvStartFailed, failed(err))
			}
		case ActFirstReady:
			s.firstReady(c.gen)
		case ActReloadDone, ActReloadFailed:
			ok, reason, g := true, "", c.gen
			if a == ActReloadFailed {
				ok, reason, g = false, c.reason, nil
				if reason == "" {
					reason = "the wrapper is stopping"
				}
			}
			if s.st.Trigger == triggerRespawn {
				s.then(s.respawnSettled(ok, reason, g))
			} else {
				s.then(s.reloadSettled(ok, reason, g))
			}
		case ActStartFailed:
			s.startFailed(&c)
		case ActForwardStop:
			s.then(s.forwardStop(c.sig, c.why, c.requested))
		case ActKillAll:
			s.killAll()
		case ActServingLost:
			s.servingLost(c)
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
}

// signalEvents is what each signal that the wrapper handles means: its
// Event, and the context its actions see (the signal, the reason in the
// log, whether an operator asked for the stop).
var signalEvents = map[os.Signal]follow{
	unix.SIGUSR2: {EvReload, evCtx{sig: unix.SIGUSR2, why: "SIGUSR2"}},
	unix.SIGHUP:  {EvReload, evCtx{sig: unix.SIGHUP, why: "SIGHUP"}},
	unix.SIGTERM: {EvStop, evCtx{sig: unix.SIGTERM, why: "SIGTERM received", requested: true}},
	unix.SIGINT:  {EvStop, evCtx{sig: unix.SIGINT, why: "SIGINT received", requested: true}},
	unix.SIGUSR1: {EvGracefulStop, evCtx{sig: unix.SIGUSR1, why: "SIGUSR1 received, letting connections finish", requested: true}},
	unix.SIGABRT: {EvAbort, evCtx{sig: unix.SIGABRT, why: "SIGABRT"}},
}

func (s *Supervisor) onRequest(req *control.Request) {
	switch req.Kind {
	case control.Status:
		req.Snapshot <- s.report()
	case control.Reload:
		s.handle(EvReload, evCtx{req: req, why: "reload command"})
	}
}

// onExit is a child's exit: what it means is exit.go's (exited), then
// whether any haproxy is left.
func (s *Supervisor) onExit(ex proc.Exit) {
	f, ours := s.exited(ex)
	if !ours {
		return
	}
	s.then(f)
	s.then(s.noneLeft(ex.WS))
}

// onEvent is a helper's result.
func (s *Supervisor) onEvent(ev event) {
	switch ev.kind {
	case evVersion:
		s.then(s.versionKnown(ev))
	case evReadyResult:
		s.then(s.ready(ev.gen, ev.err))
	case evOldStopped:
		s.then(s.oldStopped(ev.gen, ev.err))
	case evSockets:
		s.holdSockets(ev.gen, ev.socks, ev.err)
	case evCancelled:
		// a stop ended the helper: what it found means nothing now
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

// upgrade is the loop's part of an upgrade (upgrade.go): everything queued
// is handled first, with the phase Upgrading (a stop then cancels the
// upgrade); the reaper holds its exits (the new image reaps them) and the
// control socket stops accepting (its queue waits for the new image). Then
// execNew executes the new binary. If the exec does not happen, all is
// resumed and the reload goes on here.
func (s *Supervisor) upgrade() {
	s.phase = Upgrading
	s.r.Hold()
	if s.ctl != nil {
		s.ctl.Pause(5*time.Second, s.onRequest)
	}
	for s.phase == Upgrading && s.step(false) {
	}
	if s.phase != Upgrading || s.helpers > 0 {
		// A stop came (or a helper is still out): no exec.
		s.resumeHere()
		if s.phase == Upgrading {
			s.handle(EvReloadHere, evCtx{})
		}
		return
	}
	done, err := s.execNew(s.lastMoment)
	defer done()
	if errors.Is(err, handoff.ErrCancelled) {
		s.resumeHere()
		if s.phase == Upgrading {
			s.handle(EvReloadHere, evCtx{})
		}
		return
	}
	logx.Warningf("re-exec failed (%v): reloading in the running image", err)
	s.resumeHere()
	s.handle(EvReloadHere, evCtx{})
}

// lastMoment runs just before an upgrade's execve, once the stop signals
// take their default action: it handles whatever is still queued (a stop
// cancels the exec) and says whether to go on. A signal caught before may
// still be on its way through the Go runtime to the channel; a marker
// (SIGWINCH, which the wrapper does not use) raised now is a barrier: the
// runtime hands pending signals over in signal-number order, and every
// handled signal's number is lower, so once the marker arrives, every
// signal that came before it is in the channel.
func (s *Supervisor) lastMoment() bool {
	marker := make(chan os.Signal, 1)
	signal.Notify(marker, unix.SIGWINCH)
	defer signal.Stop(marker)
	_ = unix.Kill(os.Getpid(), unix.SIGWINCH)
	bound := time.NewTimer(time.Second)
	defer bound.Stop()
	for s.phase == Upgrading {
		select {
		case sig := <-s.cfg.Signals:
			if in, ok := signalEvents[sig]; ok {
				s.handle(in.ev, in.c)
			}
			continue
		case <-marker:
		case <-bound.C:
			logx.Warningf("upgrade: the signal barrier did not come back within 1 s")
		}
		break
	}
	for s.phase == Upgrading && s.step(false) {
	}
	return s.phase == Upgrading && s.helpers == 0
}
