package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/listeners"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// The takeover: a new generation answers on its readiness socket (ready),
// the generations before it drain, and once they stopped listening it
// serves alone (took): the pid file names it, the held sockets become its
// (held.go), and EvReady settles the first start or the reload.

// ready is a new generation's readiness result: on an error it is killed
// (its exit settles the start as failed, with its output); else the other
// generations drain (haproxy >= 1.8: SIGUSR1, haproxy's own -sf, sent by the
// wrapper now that the new one serves), and it takes over at once, or once
// they stopped listening (a helper posts evOldStopped).
func (s *Supervisor) ready(g *generation, err error) *follow {
	if g != s.starting {
		return nil // already settled (the process exited first)
	}
	if s.phase == Stopping {
		return nil // its exit settles it
	}
	if err != nil {
		// Our unreaped child: its pid is ours to kill.
		g.failure = err
		_ = unix.Kill(g.Pid, unix.SIGKILL)
		return nil
	}
	answered, checkFrom := time.Since(g.Started), time.Now()
	if s.st.Mode == haproxy.ModeForeground {
		if n, err := haproxy.Listeners(g.Pid, g.ReadySock); err == nil && n == 0 {
			// haproxy alone refuses a configuration without any
			// listener; only the readiness socket let it start.
			g.failure = errors.New("the configuration has no listener (haproxy alone refuses it: \"No enabled listener found\"): check its 'bind' lines")
			_ = unix.Kill(g.Pid, unix.SIGKILL)
			return nil
		}
	}
	logx.Debugf("generation %d answered %s after its spawn; its listener check took %s",
		g.Gen, answered.Round(10*time.Microsecond), time.Since(checkFrom).Round(10*time.Microsecond))
	g.cancel()
	var stopping []int
	for _, o := range s.st.Gens {
		if o != g && !o.Draining {
			o.Draining = true
			o.DrainFrom = time.Now()
			if s.st.Mode == haproxy.ModeForeground {
				// haproxy's own -sf, sent by the wrapper once the
				// new generation serves (haproxy.ChildArgs).
				s.signalGens([]*generation{o}, unix.SIGUSR1)
				stopping = append(stopping, s.targets([]*generation{o})...)
			}
		}
	}
	if len(stopping) == 0 {
		return s.took(g)
	}
	// The reload is done once the old generations stopped accepting:
	// a request sent after "reload" returned reaches the new one.
	s.helpers++
	go func() {
		from := time.Now()
		err := waitStoppedListening(stopping, oldStopTimeout)
		logx.Debugf("the old generation(s) stopped listening %s after SIGUSR1", time.Since(from).Round(10*time.Microsecond))
		s.events <- event{kind: evOldStopped, gen: g, err: err}
	}()
	return nil
}

// oldStopped is the end of the wait for the old generations to stop
// listening: the new one takes over.
func (s *Supervisor) oldStopped(g *generation, err error) *follow {
	if g != s.starting || s.phase == Stopping {
		return nil
	}
	if err != nil {
		logx.Warningf("%v: the reload counts as done", err)
	}
	return s.took(g)
}

// took completes a generation's start: it serves, alone (pid file, held
// sockets); EvReady follows.
func (s *Supervisor) took(g *generation) *follow {
	s.starting = nil
	s.stopExtend()
	g.Ready = true
	s.enforceDrainLimits(time.Now())
	if s.st.Mode == haproxy.ModeLegacy {
		pids, _, _ := proc.ReadPIDFile(s.cfg.Inv.PIDFile)
		g.Workers, _ = proc.FilterOwn(pids, s.own)
	} else {
		s.writePIDFile(g.Pid)
		s.fetchSockets(g)
	}
	s.lostServing = false
	return &follow{EvReady, evCtx{gen: g}}
}

// oldStopTimeout bounds the wait for soft-stopped generations to close
// their listeners (haproxy's "grace" keeps them open on purpose).
const oldStopTimeout = 2 * time.Second

// waitStoppedListening waits until none of pids holds a listening socket
// (or is gone), polling /proc with a back-off from 100 µs to 2 ms, at most d.
func waitStoppedListening(pids []int, d time.Duration) error {
	deadline := time.Now().Add(d)
	wait := 100 * time.Microsecond
	for {
		left := 0
		for _, p := range pids {
			if n, err := haproxy.Listeners(p); err == nil && n > 0 {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d old haproxy process(es) still listening %s after SIGUSR1 (a 'grace' setting?)", left, d)
		}
		time.Sleep(wait)
		wait = min(wait*2, 2*time.Millisecond)
	}
}

// fetchSockets takes copies of generation g's listening sockets, in a
// helper (the exchange is bounded, but the loop must not wait for it): its
// evSockets makes them the held set (holdSockets).
func (s *Supervisor) fetchSockets(g *generation) {
	if s.holder == nil || g.ReadySock == "" {
		return
	}
	sock := g.ReadySock
	s.helpers++
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
		defer cancel()
		socks, err := listeners.Fetch(ctx, sock)
		s.events <- event{kind: evSockets, gen: g, socks: socks, err: err}
	}()
}
