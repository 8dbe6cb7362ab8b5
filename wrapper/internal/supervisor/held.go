package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/listeners"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
)

// Held listening sockets (haproxy >= 1.8). The wrapper keeps a copy of every
// listening socket of the serving generation (taken on its readiness socket,
// which exposes them) and hands them over with -x from its own socket
// (listeners.Holder): on every reload, on the respawn after a crash
// (respawn.go), and on the first start after a restart (sockets systemd kept
// in its file descriptor store, or bound for a .socket unit). New
// connections wait in the kernel's backlog while no haproxy accepts, instead
// of being refused. A stop releases them (stop.go).

// HolderSocketName is the holder's socket in the runtime folder.
const HolderSocketName = "listeners.sock"

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

// usableStatsSocket returns HAPROXY_STATS_SOCKET when it is a socket that can
// be passed to -x; else "" with a warning (haproxy exits when -x names a
// socket that is not there).
func (s *Supervisor) usableStatsSocket() string {
	p := s.cfg.Settings.StatsSocket
	if p == "" {
		return ""
	}
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		logx.Warningf("HAPROXY_STATS_SOCKET %s: %v: reloading without socket handover (connections may be reset)", p, err)
		return ""
	case fi.Mode()&os.ModeSocket == 0:
		logx.Warningf("HAPROXY_STATS_SOCKET %s is not a socket: reloading without socket handover (connections may be reset)", p)
		return ""
	}
	return p
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
