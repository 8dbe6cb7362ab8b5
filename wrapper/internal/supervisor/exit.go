package supervisor

import (
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// A generation's end, from the reaper (exited): a starting generation that
// failed (or that retries without -x), the serving one that died (respawned,
// or nothing serves any more), a draining one that finished; then whether
// any haproxy is left (noneLeft).

// exited is what the exit ex means; ours is false for a pid that is no
// generation's. The event that follows is handed back.
func (s *Supervisor) exited(ex proc.Exit) (f *follow, ours bool) {
	g := s.findGen(ex.Pid)
	if g == nil {
		logx.Debugf("reaped pid %d (%s)", ex.Pid, proc.DescribeStatus(ex.WS))
		return nil, false
	}
	wasServing := g.Ready && !g.Draining
	s.removeGen(g)
	if s.phase == Stopping {
		s.stopExit(g, ex.WS)
	}
	c := evCtx{gen: g, ws: ex.WS}
	switch {
	case g == s.starting:
		return s.startEnded(g, ex.WS), true
	case wasServing:
		return s.servingEnded(g, ex.WS), true
	}
	return &follow{EvOldExited, c}, true
}

// startEnded is the end of a generation that did not serve yet: a reload
// whose -x failed retries without it at once; else the start failed, with
// haproxy's output.
func (s *Supervisor) startEnded(g *generation, ws unix.WaitStatus) *follow {
	s.starting = nil
	s.stopExtend()
	g.out.Settle(500 * time.Millisecond)
	out := g.out.Text()
	if (s.phase == Reloading || s.phase == Starting) && g.WithX && !s.noX && haproxy.SocketTransferFailed(out) {
		logx.Warningf("haproxy generation %d could not take the listening sockets over -x %s (%s): retrying without socket handover, connections may be reset",
			g.Gen, g.XSock, haproxy.SummarizeCheck(out))
		s.noX = true
		if err := s.spawn(); err != nil {
			return &follow{EvStartFailed, failed(err)}
		}
		return nil
	}
	c := evCtx{gen: g, ws: ws}
	c.reason = fmt.Sprintf("haproxy generation %d (pid %d) exited during start: %s", g.Gen, g.Pid, proc.DescribeStatus(ws))
	if g.failure != nil {
		c.reason = fmt.Sprintf("haproxy generation %d (pid %d): %v", g.Gen, g.Pid, g.failure)
	}
	if strings.TrimSpace(out) != "" {
		c.reason += ": " + haproxy.SummarizeCheck(out)
	}
	c.code = proc.StatusCode(ws)
	if g.failure != nil {
		c.code = proc.ExitStartFailed
	}
	s.lastFailed = ws
	return &follow{EvStartFailed, c}
}

// servingEnded is the death of the serving generation: respawned when
// canRespawn allows, else nothing serves (during a reload, the new
// generation may still take over).
func (s *Supervisor) servingEnded(g *generation, ws unix.WaitStatus) *follow {
	c := evCtx{gen: g, ws: ws}
	if s.phase == Stopping {
		return &follow{EvServingDied, c}
	}
	if s.phase == Serving && s.canRespawn(ws, time.Now()) {
		return &follow{EvRespawn, c}
	}
	c.reason = fmt.Sprintf("haproxy generation %d (pid %d) died: %s", g.Gen, g.Pid, proc.DescribeStatus(ws))
	if s.phase == Reloading || s.phase == Upgrading {
		s.lostServing = true
		if s.starting != nil && ws.Exited() && ws.ExitStatus() == 0 {
			// The usual end of a reload: the new generation told
			// this one to stop (-sf) before it answered us.
			c.reason = ""
		} else {
			s.lastFailed = ws
			logx.Errorf("%s", c.reason)
		}
	} else {
		logx.Errorf("%s", c.reason)
	}
	return &follow{EvServingDied, c}
}

// noneLeft hands back EvNoneLeft once no generation is left (and none is
// about to be: during a first start's check nothing runs yet).
func (s *Supervisor) noneLeft(ws unix.WaitStatus) *follow {
	if len(s.st.Gens) > 0 || s.starting != nil {
		return nil
	}
	if s.phase == Reloading && s.st.Trigger == triggerRespawn {
		return nil // its new generation is on its way, from the held sockets
	}
	switch s.phase {
	case Starting, Done:
		return nil
	case Serving:
		return &follow{EvNoneLeft, evCtx{ws: ws, why: "none-left"}}
	}
	return &follow{EvNoneLeft, evCtx{ws: ws, reason: "no haproxy left during the reload"}}
}

// servingLost sets the exit code once nothing serves any more: haproxy's
// own, or the last failed start's.
func (s *Supervisor) servingLost(c evCtx) {
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
}
