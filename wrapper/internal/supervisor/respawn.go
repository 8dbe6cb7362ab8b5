package supervisor

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// A respawn: the serving generation crashed (exit.go), and a new one starts
// at once from the held sockets (held.go), a reload with no RELOADING=1
// and no upgrade, at most HAPROXY_WRAPPER_RESPAWN_LIMIT times a minute.

// respawnWindow is the period HAPROXY_WRAPPER_RESPAWN_LIMIT counts in.
const respawnWindow = time.Minute

// canRespawn tells whether the serving generation that just died with ws
// is replaced at once: haproxy >= 1.8, a crash (a signal or a non-zero
// exit; haproxy stopped by hand exits 0), and fewer than
// HAPROXY_WRAPPER_RESPAWN_LIMIT respawns in the last minute.
func (s *Supervisor) canRespawn(ws unix.WaitStatus, now time.Time) bool {
	if s.st.Mode != haproxy.ModeForeground || s.cfg.Settings.RespawnLimit <= 0 {
		return false
	}
	if ws.Exited() && ws.ExitStatus() == 0 {
		return false
	}
	recent := s.st.RespawnTimes[:0]
	for _, t := range s.st.RespawnTimes {
		if now.Sub(t) < respawnWindow {
			recent = append(recent, t)
		}
	}
	s.st.RespawnTimes = recent
	if len(recent) >= s.cfg.Settings.RespawnLimit {
		logx.Errorf("haproxy died %d times within %s (HAPROXY_WRAPPER_RESPAWN_LIMIT=%d): no more respawn", len(recent)+1, respawnWindow, s.cfg.Settings.RespawnLimit)
		return false
	}
	return true
}

// beginRespawn starts a generation in place of the dead one, from the held
// sockets: a reload without RELOADING=1, no upgrade, and when it fails the
// exit code is the dead generation's.
func (s *Supervisor) beginRespawn(g *generation, ws unix.WaitStatus) {
	s.st.RespawnTimes = append(s.st.RespawnTimes, time.Now())
	s.st.Respawns++
	s.crashWS = ws
	logx.Errorf("haproxy generation %d (pid %d) died (%s): respawning from %d held listening socket(s) (respawn %d of %d a minute)",
		g.Gen, g.Pid, proc.DescribeStatus(ws), s.holder.Len(), len(s.st.RespawnTimes), s.cfg.Settings.RespawnLimit)
	s.notify.Status(fmt.Sprintf("haproxy generation %d died (%s): respawning", g.Gen, proc.DescribeStatus(ws)))
	s.beginReload(triggerRespawn, nil)
}

// respawnSettled ends a respawn: the new generation serves, or the wrapper
// stops with the dead generation's status (EvServingDied follows).
func (s *Supervisor) respawnSettled(ok bool, reason string, g *generation) *follow {
	s.st.Trigger = ""
	if ok {
		logx.Noticef("respawned: generation %d serving (pid %d) in %s", g.Gen, g.Pid, time.Since(s.st.ReloadStarted).Round(time.Millisecond))
		s.notify.Ready(s.report().Line(), os.Getpid())
		s.kickStatus()
		return nil
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
		return &follow{EvServingDied, evCtx{reason: "haproxy died and could not be respawned: " + reason, ws: s.crashWS}}
	}
	return nil
}
