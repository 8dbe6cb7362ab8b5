package supervisor

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/listeners"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// Held listening sockets (haproxy >= 1.8). The wrapper keeps a copy of every
// listening socket of the serving generation (taken on its readiness socket,
// which exposes them) and hands them over with -x from its own socket
// (listeners.Holder): on every reload, on the respawn after a crash, and on
// the first start after a restart (sockets systemd kept in its file
// descriptor store, or bound for a .socket unit). New connections wait in
// the kernel's backlog while no haproxy accepts, instead of being refused.

// HolderSocketName is the holder's socket in the runtime folder.
const HolderSocketName = "listeners.sock"

// triggerRespawn is the trigger of a reload that replaces a dead generation.
const triggerRespawn = "respawn"

// fetchTimeout bounds the exchange that takes a generation's sockets.
const fetchTimeout = 2 * time.Second

// xSocket is what a new generation gets with -x: the holder when it holds
// sockets; else, on a reload, the serving generation's readiness socket
// (which exposes its listeners); else HAPROXY_STATS_SOCKET when usable.
func (s *Supervisor) xSocket(reload bool) string {
	if s.st.Mode == haproxy.ModeLegacy {
		return "" // -x does not exist before 1.8
	}
	if s.holder != nil && s.holder.Len() > 0 {
		return s.holder.Path()
	}
	if !reload {
		return ""
	}
	if sv := s.serving(); sv != nil && sv.ReadySock != "" {
		return sv.ReadySock
	}
	return s.usableStatsSocket()
}

// fetchSockets takes copies of generation g's listening sockets, in a
// helper (the exchange is bounded, but the loop must not wait for it): its
// evSockets makes them the held set (holdSockets).
func (s *Supervisor) fetchSockets(g *generation) {
	if s.holder == nil || g.ReadySock == "" {
		return
	}
	sock := g.ReadySock
	s.helper(func() event {
		ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
		defer cancel()
		socks, err := listeners.Fetch(ctx, sock)
		return event{kind: evSockets, gen: g, socks: socks, err: err}
	})
}

// holdSockets makes the sockets taken from generation g the held set: a
// socket no "bind" line uses any more is closed (its port closes once the
// old generations closed theirs), and systemd's file descriptor store
// follows. Sockets that come too late (a stop began, or g no longer serves)
// are closed; a failed exchange leaves the held set as it was.
func (s *Supervisor) holdSockets(g *generation, socks []listeners.Socket, err error) {
	if err != nil {
		logx.Warningf("could not take copies of generation %d's listening sockets (%v): the held ones stay as they were", g.Gen, err)
		return
	}
	if s.phase == Stopping || s.phase == Done || s.serving() != g {
		listeners.CloseAll(socks)
		return
	}
	mine := filepath.Clean(s.cfg.Settings.RuntimeDir) + string(filepath.Separator)
	kept := socks[:0]
	for _, k := range socks {
		if strings.HasPrefix(k.UnixPath(), mine) {
			k.Close() // a readiness socket: the wrapper's own, one per generation
			continue
		}
		kept = append(kept, k)
	}
	added, same, removed := s.holder.Replace(kept)
	for _, r := range removed {
		logx.Noticef("listening socket %s closed: no bind line of generation %d uses it", r.Desc, g.Gen)
		if s.stored[r.Ino] != "" {
			s.notify.RemoveFD(s.stored[r.Ino])
			delete(s.stored, r.Ino)
		}
	}
	if len(added) > 0 {
		names := make([]string, len(added))
		for i, a := range added {
			names[i] = a.Describe()
		}
		logx.Infof("holding %d new listening socket(s) of generation %d: %s", len(added), g.Gen, strings.Join(names, ", "))
	}
	for _, k := range append(same, added...) {
		s.store(k)
	}
	if s.forking && s.restore == nil && s.restores == 0 && s.notify.Addr() != "" && s.holder.Len() > 0 {
		// The -D daemon: send the store again a few times (restoreAll).
		s.restore = time.NewTicker(s.cfg.Settings.StatusPeriod)
	}
}

// store puts a held socket in systemd's file descriptor store (under
// systemd), once per name.
func (s *Supervisor) store(k listeners.Socket) {
	if s.notify.Addr() == "" {
		return
	}
	ino, name := k.Ino(), listeners.StoreName(k)
	if s.stored[ino] == name {
		return
	}
	if old := s.stored[ino]; old != "" {
		s.notify.RemoveFD(old)
	}
	if s.notify.StoreFD(name, k.FD) {
		s.stored[ino] = name
	}
}

// releaseForLegacy lets go of the sockets systemd passed when haproxy turns
// out to be 1.7 or older: it cannot take them over (no -x), and a copy held
// beside the port it binds anew would take a share of its connections
// (SO_REUSEPORT) that nobody accepts. They leave systemd's store too.
func (s *Supervisor) releaseForLegacy() {
	if n := s.holder.Release(); n > 0 {
		logx.Warningf("haproxy %s cannot take listening sockets over (no -x before 1.8): %d socket(s) passed by systemd closed", s.st.HAProxyVersion, n)
	}
	for ino, name := range s.stored {
		s.notify.RemoveFD(name)
		delete(s.stored, ino)
	}
}

// restoreAll puts every held socket in systemd's store again (systemd
// suppresses a socket it holds already), a few times after the first start
// of the -D daemon: its first FDSTORE= may reach systemd before systemd read
// the pid file and knew the daemon as the main process (NotifyAccess=main).
// It runs on the loop, which alone changes the held set.
func (s *Supervisor) restoreAll() {
	const times = 5
	s.restores++
	if s.restores >= times {
		s.restore.Stop()
		s.restore = nil
	}
	for _, k := range s.holder.Held() {
		s.notify.StoreFD(listeners.StoreName(k), k.FD)
	}
}

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
	s.noX = false
	s.st.ReloadStarted = time.Now()
	s.st.Trigger = triggerRespawn
	logx.Errorf("haproxy generation %d (pid %d) died (%s): respawning from %d held listening socket(s) (respawn %d of %d a minute)",
		g.Gen, g.Pid, proc.DescribeStatus(ws), s.holder.Len(), len(s.st.RespawnTimes), s.cfg.Settings.RespawnLimit)
	s.notify.Status(fmt.Sprintf("haproxy generation %d died (%s): respawning", g.Gen, proc.DescribeStatus(ws)))
	s.startCheck(true)
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
