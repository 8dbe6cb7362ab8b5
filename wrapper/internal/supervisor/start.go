package supervisor

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// The first start: haproxy -v (begin), the check (reload.go's beginReload),
// the first generation (reload.go's spawn); once it serves, READY=1 and a
// -D parent is told (firstReady, daemonDone); or the start failed.

// begin starts the first start's helper: "haproxy -v" (a stop during it
// kills it), then the configuration check, then the first generation.
func (s *Supervisor) begin() {
	hctx, bin, cache := s.helperCtx, s.cfg.Bin, s.cfg.Settings.VersionCache
	s.helpers++
	go func() { s.events <- s.version(hctx, bin, cache) }()
}

// version is haproxy's version (evVersion): from HAPROXY_WRAPPER_VERSION_CACHE
// when it knows the binary, else from "haproxy -v", then remembered there.
func (s *Supervisor) version(hctx context.Context, bin, cache string) event {
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
}

// versionKnown goes on with the first start once haproxy's version is
// known: the check. When haproxy -v failed, EvStartFailed follows.
func (s *Supervisor) versionKnown(ev event) *follow {
	if s.phase != Starting {
		return nil // stopping: nothing was started
	}
	if ev.err != nil {
		return &follow{EvStartFailed, failed(ev.err)}
	}
	s.st.HAProxyVersion = ev.text
	s.st.Mode = ev.mode
	if ev.mode == haproxy.ModeLegacy {
		s.releaseForLegacy()
	}
	s.st.NoPipe = ev.mode == haproxy.ModeLegacy && !haproxy.LegacyPipe(ev.text)
	s.st.StartedAt = time.Now()
	ready := ""
	if s.st.NoPipe {
		ready = ", ready when its pid file names its live processes (no HAPROXY_WRAPPER_FD before 1.5.19 and in 1.6)"
	}
	logx.Infof("haproxy %s (%s), start mode %s%s", ev.text, s.cfg.Bin, s.st.Mode, ready)
	s.notify.Status("starting haproxy " + ev.text)
	s.beginReload(triggerStart, nil)
	return nil
}

func (s *Supervisor) firstReady(g *generation) {
	logx.Noticef("haproxy %s serving: generation %d, pid %d, ready in %s", s.st.HAProxyVersion, g.Gen, g.Pid, time.Since(g.Started).Round(time.Millisecond))
	s.notify.Ready(s.report().Line(), os.Getpid())
	s.daemonDone("")
	s.kickStatus()
}

// startFailed is the end of a first start that failed: it says why (log,
// STATUS=, a -D parent) and sets the exit code; the stop that follows
// (ActForwardStop) gets c's reason and SIGTERM.
func (s *Supervisor) startFailed(c *evCtx) {
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
