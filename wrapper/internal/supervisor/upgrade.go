package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/handoff"
	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/listeners"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// An upgrade re-executes the wrapper only when the binary on disk is no
// longer the running image (a new package was installed): an ordinary reload
// stays in this image, with no exec, no state in the environment and no
// signal window. The new binary is probed first (it runs, answers the
// hand-off version, exits 0 within 2 s); one that fails is refused with one
// warning and the reload goes on here. The loop's part (running the queue
// dry, the last moment before execve) is in loop.go: upgrade, lastMoment.

// upgradeWanted tells whether the wrapper's path now names another file
// than the running image.
func (s *Supervisor) upgradeWanted() bool {
	var st unix.Stat_t
	if err := unix.Stat(s.cfg.Self, &st); err != nil {
		return false // removed: nothing to execute, reload here
	}
	if s.image == (imageID{}) {
		return false
	}
	return imageID{Dev: st.Dev, Ino: st.Ino} != s.image
}

// ProbeTimeout bounds the new binary's probe.
const ProbeTimeout = 2 * time.Second

func (s *Supervisor) startProbe() {
	self, hctx := s.cfg.Self, s.helperCtx
	s.helpers++
	go func() {
		err := handoff.Probe(hctx, self, ProbeTimeout, func(ctx context.Context, path string, argv []string) (string, unix.WaitStatus, error) {
			return s.r.RunCapture(ctx, path, argv, proc.ChildEnv(os.Environ()))
		})
		s.events <- event{kind: evProbeResult, err: err}
	}()
}

// execNew hands everything over and executes the new binary: the lock, the
// control socket, the waiting reload clients, each generation's output, the
// held sockets, and a sentinel (handoff.StartSentinel). atLast runs
// just before execve. It returns only when the exec did not happen, with
// done, which releases the sentinel (to call once the reload went on here).
func (s *Supervisor) execNew(atLast func() bool) (done func(), err error) {
	done = func() {}
	files := []handoff.Named{}
	if s.cfg.Lock != nil {
		files = append(files, handoff.Named{Name: "lock", Conn: s.cfg.Lock})
	}
	if s.ctl != nil {
		files = append(files, handoff.Named{Name: "control", Conn: s.ctl.Listener()})
	}
	for i, w := range s.waiters {
		files = append(files, handoff.Named{Name: "waiter-" + strconv.Itoa(i), Conn: w.Conn()})
	}
	for i, w := range s.pendingWaiters {
		files = append(files, handoff.Named{Name: "pending-" + strconv.Itoa(i), Conn: w.Conn()})
	}
	for _, g := range s.st.Gens {
		if g.out != nil {
			files = append(files, handoff.Named{Name: "output-" + strconv.Itoa(g.Gen), Conn: g.out.Conn()})
		}
	}
	var held []heldMeta
	if s.holder != nil {
		files = append(files, handoff.Named{Name: "holder", Conn: s.holder.Listener()})
		for i, k := range s.holder.Held() {
			files = append(files, handoff.Named{Name: "held-" + strconv.Itoa(i), Conn: listeners.RawConn(k.FD)})
			held = append(held, heldMeta{NS: k.NS, Iface: k.Iface, Opts: k.Opts, Stored: s.stored[k.Ino()]})
		}
	}
	sentinel, serr := handoff.StartSentinel(s.cfg.Self, os.Getpid(), s.targets(s.st.Gens), func(path string, argv []string, files []*os.File) (int, error) {
		return s.r.Spawn(path, argv, proc.ChildEnv(os.Environ()), files, make(chan proc.Exit, 1))
	})
	if serr != nil {
		logx.Warningf("upgrade sentinel: %v: a SIGTERM during the exec would leave haproxy running", serr)
	} else {
		files = append(files, handoff.Named{Name: "sentinel", Conn: sentinel.Pipe})
		done = func() { handoff.Release(sentinel.Pipe) } // reached only when the exec did not happen
	}
	st := s.st
	st.NotifyWarned = s.notify.Warned()
	st.Held = held
	logx.Noticef("re-executing on %s: %s is a new binary.", st.Trigger, s.cfg.Self)
	logx.L.Flush(200 * time.Millisecond)
	env := proc.UnsetEnv(os.Environ(), proc.EnvDaemonFD)
	// Over the exec (handoff.Exec): a stop signal (SIGTERM, SIGINT,
	// SIGUSR1) takes its default action and ends the wrapper, whose
	// sentinel then stops haproxy; SIGUSR2 stays pending for the new image
	// when it can; SIGHUP is ignored (the Go runtime keeps an inherited
	// "ignore" for it until the new image catches it, where it would
	// otherwise kill the new image while it starts). A reload signal
	// dropped there asks for nothing that the reload under way does not
	// do: its new generation starts after it.
	signal.Ignore(unix.SIGHUP)
	err = handoff.Exec(s.cfg.Self, s.cfg.Argv, env, st, files,
		[]unix.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGUSR1}, []unix.Signal{unix.SIGUSR2}, atLast)
	signal.Notify(s.cfg.Signals, unix.SIGHUP)
	return done, err
}

func (s *Supervisor) resumeHere() {
	s.r.Release()
	if s.ctl != nil {
		s.ctl.Resume()
	}
}

// Resume rebuilds a supervisor in a new image from what the previous one
// handed over. The reload that caused the upgrade goes on in Run.
func Resume(cfg Config, rcv handoff.Received) (*Supervisor, error) {
	s := New(cfg)
	if err := json.Unmarshal(rcv.State, &s.st); err != nil {
		for _, f := range rcv.Files {
			f.Close()
		}
		return nil, fmt.Errorf("hand-off state: %w", err)
	}
	s.notify.SetWarned(s.st.NotifyWarned)
	for _, g := range s.st.Gens {
		s.r.Watch(g.Pid, s.exits)
	}
	var held []listeners.Socket
	for _, name := range rcv.Order {
		f := rcv.Files[name]
		switch {
		case name == "control":
			ctl, err := control.FromFile(f)
			if err != nil {
				logx.Warningf("control socket handed over: %v: 'reload' and 'status' unavailable until restart", err)
				continue
			}
			s.ctl = ctl
		case strings.HasPrefix(name, "waiter-"), strings.HasPrefix(name, "pending-"):
			req, err := control.RequestFromFile(f)
			if err != nil {
				continue
			}
			if strings.HasPrefix(name, "waiter-") {
				s.waiters = append(s.waiters, req)
			} else {
				s.pendingWaiters = append(s.pendingWaiters, req)
			}
		case name == "lock":
			s.cfg.Lock = f // the flock belongs to the open file: it stays held
		case name == "sentinel":
			// This image catches its signals since its init: the
			// sentinel may go.
			handoff.Release(f)
		case name == "holder":
			h, err := listeners.FromListener(f, filepath.Join(cfg.Settings.RuntimeDir, HolderSocketName))
			if err != nil {
				logx.Warningf("listening sockets' hand-over socket handed over: %v: reloads take them from the serving generation", err)
				continue
			}
			s.holder = h
		case strings.HasPrefix(name, "held-"):
			i, _ := strconv.Atoi(strings.TrimPrefix(name, "held-"))
			k, err := listeners.FromFile(f)
			if err != nil || i < 0 || i >= len(s.st.Held) {
				k.Close()
				continue
			}
			m := s.st.Held[i]
			k.NS, k.Iface, k.Opts = m.NS, m.Iface, m.Opts
			held = append(held, k)
			if m.Stored != "" {
				s.stored[k.Ino()] = m.Stored
			}
		case strings.HasPrefix(name, "output-"):
			n, _ := strconv.Atoi(strings.TrimPrefix(name, "output-"))
			for _, g := range s.st.Gens {
				if g.Gen == n {
					g.out = haproxy.NewOutput(f)
					f = nil
				}
			}
			if f != nil {
				f.Close()
			}
		default:
			f.Close()
		}
	}
	s.st.Held = nil
	if s.holder != nil {
		s.holder.Add(held)
	} else {
		listeners.CloseAll(held)
	}
	return s, nil
}
