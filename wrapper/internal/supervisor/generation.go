package supervisor

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// A generation's records: which one a pid is, which serves, which pids
// are the wrapper's own to signal, the -sf list, the drain limits, the pid
// file. The generation type itself is in supervisor.go.

func (s *Supervisor) findGen(pid int) *generation {
	for _, g := range s.st.Gens {
		if g.Pid == pid {
			return g
		}
	}
	return nil
}

func (s *Supervisor) removeGen(g *generation) {
	out := s.st.Gens[:0]
	for _, x := range s.st.Gens {
		if x != g {
			out = append(out, x)
		}
	}
	s.st.Gens = out
	if g.cancel != nil {
		g.cancel()
	}
	g.removeFiles()
}

// serving is the generation that serves, or nil.
func (s *Supervisor) serving() *generation {
	for i := len(s.st.Gens) - 1; i >= 0; i-- {
		g := s.st.Gens[i]
		if g.Ready && !g.Draining {
			return g
		}
	}
	return nil
}

// own tells whether pid is a haproxy process of the wrapper: a generation
// leader (an unreaped child: its pid cannot have been reused), or a live
// process whose parent is a leader or the wrapper itself (legacy workers).
func (s *Supervisor) own(pid int) bool {
	if s.findGen(pid) != nil {
		return true
	}
	st, pp := proc.Stat(pid)
	return proc.Running(st) && (pp == os.Getpid() || s.findGen(pp) != nil)
}

// targets returns every pid to signal for the given generations: leaders,
// and legacy workers that are still the wrapper's own.
func (s *Supervisor) targets(gens []*generation) []int {
	var out []int
	seen := map[int]bool{}
	for _, g := range gens {
		pids := append([]int{}, g.Workers...)
		if s.st.Mode == haproxy.ModeForeground || len(g.Workers) == 0 {
			pids = append(pids, g.Pid)
		}
		for _, p := range pids {
			if !seen[p] && s.own(p) {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

func (s *Supervisor) signalGens(gens []*generation, sig unix.Signal) {
	for _, p := range s.targets(gens) {
		if err := unix.Kill(p, sig); err != nil && err != unix.ESRCH {
			logx.Warningf("send %s to haproxy pid %d: %v", unix.SignalName(sig), p, err)
		}
	}
}

// oldPids is the -sf list: every live pid of every generation (not only the
// serving one: a generation still starting or draining must be told too, or
// a quick second reload can leave it serving the old config forever).
func (s *Supervisor) oldPids() []int {
	if s.st.Mode == haproxy.ModeLegacy {
		// haproxy <= 1.7 writes its worker pids to the pid file; keep only
		// those that are the wrapper's own.
		pids, garbage, err := proc.ReadPIDFile(s.cfg.Inv.PIDFile)
		if err != nil {
			logx.Warningf("%v", err)
		}
		if len(garbage) > 0 {
			logx.Warningf("pid file %s holds garbage %q: ignored", s.cfg.Inv.PIDFile, strings.Join(garbage, " "))
		}
		mine, foreign := proc.FilterOwn(pids, s.own)
		if len(foreign) > 0 {
			logx.Warningf("pid file %s names pids %v that are not haproxy processes of this wrapper: not signalled", s.cfg.Inv.PIDFile, foreign)
		}
		seen := map[int]bool{}
		for _, p := range mine {
			seen[p] = true
		}
		for _, p := range s.targets(s.st.Gens) {
			if !seen[p] {
				mine = append(mine, p)
			}
		}
		return mine
	}
	return s.targets(s.st.Gens)
}

// enforceDrainLimits ends the oldest draining generations past
// HAPROXY_WRAPPER_MAX_DRAINING, and those draining for longer than
// HAPROXY_WRAPPER_MAX_DRAIN_AGE, with SIGTERM: a reload storm must not grow
// without bound.
func (s *Supervisor) enforceDrainLimits(now time.Time) {
	var draining []*generation
	for _, g := range s.st.Gens { // in start order: oldest first
		if g.Draining && !g.Retiring {
			draining = append(draining, g)
		}
	}
	excess := len(draining) - s.cfg.Settings.MaxDraining
	for i, g := range draining {
		why := ""
		switch age := s.cfg.Settings.MaxDrainAge; {
		case i < excess:
			why = fmt.Sprintf("more than %d generations draining (HAPROXY_WRAPPER_MAX_DRAINING)", s.cfg.Settings.MaxDraining)
		case age > 0 && !g.DrainFrom.IsZero() && now.Sub(g.DrainFrom) >= age:
			why = fmt.Sprintf("draining for more than %s (HAPROXY_WRAPPER_MAX_DRAIN_AGE)", age)
		default:
			continue
		}
		g.Retiring = true
		s.st.Retired++
		logx.Warningf("haproxy generation %d (pid %d) retired with SIGTERM: %s", g.Gen, g.Pid, why)
		s.signalGens([]*generation{g}, unix.SIGTERM)
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
