package supervisor

import (
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// A stop: the stop signal to every generation (forwardStop), with
// HAPROXY_WRAPPER_STOP_GRACE a soft stop first (softStop, graceOver); each
// generation's end gives the exit code (stopExit); at the end, what the
// wrapper created is removed (cleanup).

// forwardStop sends the stop signal to every generation and ends helpers;
// when no haproxy runs, EvNoneLeft follows.
func (s *Supervisor) forwardStop(sig unix.Signal, why string, requested bool) *follow {
	if sig == 0 {
		sig = unix.SIGTERM
	}
	first := s.stopSig == 0
	s.stopSig = sig
	s.st.Pending = false
	// Only the first stop a signal asks for is soft: a second SIGTERM,
	// SIGUSR1 then SIGTERM, and the stops the wrapper decides are not.
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
		return &follow{EvNoneLeft, evCtx{}}
	}
	return nil
}

// stopExit records a generation's end during a stop: the first that did not
// end the way a stop ends it gives the exit code (a reload's generation that
// never served does not count).
func (s *Supervisor) stopExit(g *generation, ws unix.WaitStatus) {
	if g != nil && !g.Ready && g.Reload {
		// A reload's (or respawn's) new generation, still starting when
		// the stop came: how it ends (e.g. its -x exchange cut short by
		// the old one's stop) says nothing of the service.
		return
	}
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

// softStop is the first step of a stop with HAPROXY_WRAPPER_STOP_GRACE: the
// serving generations get SIGUSR1 (haproxy's soft stop: requests in flight
// finish), the stop signal follows after the grace. It reports whether it
// applies.
func (s *Supervisor) softStop(sig unix.Signal) bool {
	grace := s.cfg.Settings.StopGrace
	if grace <= 0 || s.st.Mode != haproxy.ModeForeground || (sig != unix.SIGTERM && sig != unix.SIGINT) {
		return false
	}
	logx.Noticef("soft-stopping haproxy: %s follows in %s unless it is done (HAPROXY_WRAPPER_STOP_GRACE)", unix.SignalName(sig), grace)
	s.graceSig = sig
	s.graceTimer = time.NewTimer(grace)
	return true
}

// graceOver sends the stop signal to the generations still running after
// the grace.
func (s *Supervisor) graceOver() {
	s.graceTimer = nil
	if len(s.st.Gens) == 0 {
		return
	}
	logx.Warningf("haproxy still running %s after its soft stop: %s (HAPROXY_WRAPPER_STOP_GRACE)", s.cfg.Settings.StopGrace, unix.SignalName(s.graceSig))
	for _, g := range s.st.Gens {
		g.stopSig = s.graceSig
	}
	s.signalGens(s.st.Gens, s.graceSig)
}

// killAll is the watchdog's abort: SIGKILL to every generation.
func (s *Supervisor) killAll() {
	logx.Errorf("SIGABRT received (systemd watchdog timeout?): SIGKILL to every haproxy generation, exiting")
	s.notify.Stopping("aborted: watchdog timeout")
	s.signalGens(s.st.Gens, unix.SIGKILL)
	s.helperStop()
	s.exitCode = 128 + int(unix.SIGABRT)
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
