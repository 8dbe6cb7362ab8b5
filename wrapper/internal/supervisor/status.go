package supervisor

import (
	"context"
	"os"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/listeners"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/sdnotify"
	"haproxy-systemd-wrapper/wrapper/internal/status"
)

// report is a copy of the state for status; haproxy's figures are read
// later by status.Report.Fill, outside the loop.
func (s *Supervisor) report() status.Report {
	r := status.Report{
		WrapperVersion: s.cfg.Version, WrapperPID: os.Getpid(), HAProxyVersion: s.st.HAProxyVersion,
		Mode: s.st.Mode.String(), Reloads: s.st.Reloads, ReloadsFailed: s.st.ReloadsFailed,
		ReloadInProgress: s.phase == Reloading || s.phase == Upgrading, ReloadPending: s.st.Pending,
		History: append([]status.ReloadRecord(nil), s.st.History...), CurrConns: -1, ConnRate: -1,
		StatsSocket: s.cfg.Settings.StatsSocket, Stopping: s.phase == Stopping || s.phase == Done,
		DrainRetired: s.st.Retired, LogLinesDropped: logx.L.Dropped(),
		Respawns: s.st.Respawns, HeldSockets: s.holder.Len(),
	}
	if !s.st.StartedAt.IsZero() {
		r.UptimeSec = int64(time.Since(s.st.StartedAt).Seconds())
	}
	if n := len(r.History); n > 0 {
		last := r.History[n-1]
		r.LastReload = &last
	}
	for _, g := range s.st.Gens {
		state := "draining"
		switch {
		case !g.Ready:
			state = "starting"
		case !g.Draining:
			state = "serving"
			r.Serving, r.PID, r.Generation = true, g.Pid, g.Gen
		}
		if g.Draining {
			r.Draining++
		}
		r.Generations = append(r.Generations, status.GenReport{Gen: g.Gen, PID: g.Pid, State: state, CurrConns: -1, Sock: g.ReadySock,
			Workers: append([]int(nil), g.Workers...)})
	}
	return r
}

// snapshot asks the loop for a report (from another goroutine).
func (s *Supervisor) snapshot(ctx context.Context) (status.Report, bool) {
	reply := make(chan status.Report, 1)
	select {
	case s.snapReqs <- reply:
	case <-ctx.Done():
		return status.Report{}, false
	}
	select {
	case r := <-reply:
		return r, true
	case <-ctx.Done():
		return status.Report{}, false
	}
}

// kickStatus asks for a STATUS= and metrics refresh soon (after a state
// change).
func (s *Supervisor) kickStatus() {
	select {
	case s.statusKck <- struct{}{}:
	default:
	}
}

// restoreAll puts every held socket in systemd's store again (systemd
// suppresses a socket it holds already). Under Type=forking the daemon's
// first FDSTORE= may reach systemd before it read the pid file and knew the
// daemon as the main process (NotifyAccess=main): the status ticks repeat
// it. It runs outside the loop: the holder is safe for that, and copies are
// sent, never a descriptor a reload may close meanwhile.
func (s *Supervisor) restoreAll() {
	socks, err := s.holder.Copies()
	if err != nil {
		return
	}
	defer listeners.CloseAll(socks)
	for _, k := range socks {
		s.notify.StoreFD(listeners.StoreName(k), k.FD)
	}
}

// runStatus refreshes, every HAPROXY_WRAPPER_STATUS_INTERVAL and after every
// state change, from one report (one "show info" per generation) both the
// STATUS= line, while the notify socket is set, and the metrics file, when
// HAPROXY_WRAPPER_METRICS_FILE is. STATUS= says nothing during a reload (the
// serving generation's line stays) and after a stop began. At its end the
// metrics file says haproxy_wrapper_up 0, so that a scraper never keeps the
// last figures of a wrapper that is gone; a write that fails is logged once.
func (s *Supervisor) runStatus(ctx context.Context) {
	notify, path := s.notify.Addr() != "", s.cfg.Settings.MetricsFile
	if !notify && path == "" {
		return
	}
	warned := false
	write := func(b []byte) {
		if err := proc.WriteFileAtomic(path, b, 0o644); err != nil {
			if !warned {
				logx.Warningf("metrics file %s: %v: set HAPROXY_WRAPPER_METRICS_FILE to a path in a writable folder", path, err)
				warned = true
			}
			return
		}
		warned = false
	}
	if path != "" {
		defer write([]byte(status.PrometheusDown()))
	}
	t := time.NewTicker(s.cfg.Settings.StatusPeriod)
	defer t.Stop()
	for {
		r, ok := s.snapshot(ctx)
		if !ok {
			return
		}
		line := notify && !r.Stopping && r.Serving
		if line || path != "" {
			r.Fill()
		}
		if line {
			s.notify.Status(r.Line())
			if s.forking {
				s.restoreAll()
			}
		}
		if path != "" {
			write([]byte(status.Prometheus(&r)))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.statusKck:
		}
	}
}

// runWatchdog sends WATCHDOG=1 at half of WATCHDOG_USEC, only while the
// serving haproxy answers "show info" on its readiness socket (haproxy <= 1.7:
// on HAPROXY_STATS_SOCKET, else while its process is alive and not stopped).
// A hung haproxy stops the pings and systemd's watchdog acts.
func (s *Supervisor) runWatchdog(ctx context.Context) {
	every := sdnotify.WatchdogInterval(s.cfg.Settings.WatchdogUSec, s.cfg.Settings.WatchdogPID, os.Getpid())
	if every == 0 || s.notify.Addr() == "" {
		return
	}
	logx.Infof("watchdog: pinging every %s while haproxy answers", every)
	t := time.NewTicker(every)
	defer t.Stop()
	healthy := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r, ok := s.snapshot(ctx)
		if !ok {
			continue
		}
		err := r.Healthy(every / 2)
		switch {
		case err == nil:
			s.notify.Watchdog()
			if !healthy {
				logx.Noticef("watchdog: haproxy answers again")
			}
		case healthy:
			logx.Warningf("watchdog: %v: not pinging systemd", err)
		}
		healthy = err == nil
	}
}
