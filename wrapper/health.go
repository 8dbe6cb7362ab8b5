package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// The live status and the watchdog run beside the supervisor loop: they take
// a snapshot from the loop (never blocking it on a socket), then query
// haproxy with bounded waits.

// snapshot asks the loop for a status report (not yet filled).
func (s *supervisor) snapshot(ctx context.Context) (statusReport, bool) {
	reply := make(chan statusReport, 1)
	select {
	case s.events <- func() { reply <- s.report() }:
	case <-ctx.Done():
		return statusReport{}, false
	}
	select {
	case r := <-reply:
		return r, true
	case <-ctx.Done():
		return statusReport{}, false
	}
}

// kickStatus asks for a STATUS= refresh soon (after a state change).
func (s *supervisor) kickStatus() {
	select {
	case s.statusKick <- struct{}{}:
	default:
	}
}

// runStatus refreshes STATUS= every HAPROXY_WRAPPER_STATUS_INTERVAL and after
// every state change, while the notify socket is set.
func (s *supervisor) runStatus(ctx context.Context) {
	if s.notify.addr == "" {
		return
	}
	t := time.NewTicker(s.set.StatusPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.statusKick:
		}
		r, ok := s.snapshot(ctx)
		if !ok || r.Stopping {
			continue
		}
		r.fill()
		s.notify.Status(r.line())
	}
}

// watchdogInterval returns the ping period (half of WATCHDOG_USEC), or 0 when
// the watchdog is not meant for this process.
func watchdogInterval(usec int64, wpid, mypid int) time.Duration {
	if usec <= 0 || (wpid != 0 && wpid != mypid) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// runWatchdog sends WATCHDOG=1 at half of WATCHDOG_USEC, only while the
// serving haproxy answers "show info" on its readiness socket (haproxy <= 1.7:
// on HAPROXY_STATS_SOCKET, else while its process is alive and not stopped).
// A hung haproxy stops the pings and systemd's watchdog acts.
func (s *supervisor) runWatchdog(ctx context.Context) {
	every := watchdogInterval(s.set.WatchdogUSec, s.set.WatchdogPID, os.Getpid())
	if every == 0 || s.notify.addr == "" {
		return
	}
	log.Infof("watchdog: pinging every %s while haproxy answers", every)
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
		err := r.healthy(every / 2)
		switch {
		case err == nil:
			s.notify.Watchdog()
			if !healthy {
				log.Noticef("watchdog: haproxy answers again")
			}
		case healthy:
			log.Warningf("watchdog: %v: not pinging systemd", err)
		}
		healthy = err == nil
	}
}

// healthy tells whether the serving generation answers within timeout.
func (r *statusReport) healthy(timeout time.Duration) error {
	if r.Stopping {
		return nil // a stop in progress is not a hang; TimeoutStopSec= bounds it
	}
	for _, g := range r.Generations {
		if g.State == "starting" && !r.Serving {
			return nil // first start in progress, bounded by the start timeout
		}
		if g.State != "serving" {
			continue
		}
		sock := g.sock
		if sock == "" {
			sock = r.statsSocket
		}
		if sock == "" {
			if st, _ := procStat(g.PID); st != "R" && st != "S" {
				return fmt.Errorf("haproxy pid %d is not running (state %q)", g.PID, st)
			}
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		info, err := showInfo(ctx, sock)
		if err != nil {
			return fmt.Errorf("haproxy pid %d does not answer: %w", g.PID, err)
		}
		if info.Pid != g.PID && g.sock != "" {
			return fmt.Errorf("readiness socket answered by pid %d, not %d", info.Pid, g.PID)
		}
		return nil
	}
	return fmt.Errorf("no haproxy generation serving")
}

// establishedConns counts the established TCP connections held by pid: used
// for old generations, whose stats sockets close when they soft-stop.
func establishedConns(pid int) int64 {
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var n int64
	for _, f := range []string{"tcp", "tcp6"} {
		n += countEstablished(fmt.Sprintf("/proc/%d/net/%s", pid, f), inodes)
	}
	return n
}

// countEstablished reads a /proc/net/tcp table and counts the ESTABLISHED
// (state 01) sockets whose inode is in inodes.
func countEstablished(path string, inodes map[string]bool) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	return countEstablishedIn(bufio.NewScanner(f), inodes)
}

func countEstablishedIn(sc *bufio.Scanner, inodes map[string]bool) int64 {
	var n int64
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
		if len(f) < 10 || f[3] != "01" {
			continue
		}
		if inodes[f[9]] {
			n++
		}
	}
	return n
}
