package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"

	"golang.org/x/sys/unix"
)

// reexec replaces the wrapper's image with its binary on disk (same pid, the
// children stay its own), as the legacy wrapper did, so that an upgraded
// wrapper takes effect at the next reload. The state crosses in the
// environment; the control socket and the connections of waiting "reload"
// clients cross as inherited file descriptors. It returns only on failure
// (binary removed or unusable): the caller then reloads in-process.
func (s *supervisor) reexec() error {
	if _, err := os.Stat(s.self); err != nil {
		return err
	}
	if err := unix.Access(s.self, unix.X_OK); err != nil {
		return fmt.Errorf("%s: %w", s.self, err)
	}
	// Nothing may be lost at the exec: hold the reaper (an exit reaped now
	// would never reach the new image), let accepted control requests reach
	// the loop, and handle every queued signal, exit and event first.
	s.r.mu.Lock()
	locked := true
	defer func() {
		if locked {
			s.r.mu.Unlock()
		}
	}()
	if s.ctl != nil {
		s.ctl.pause(s)
	}
	s.drainQueues()
	if s.stopping {
		if s.ctl != nil {
			s.ctl.resume(s)
		}
		return errStopping
	}
	var keep []int
	st := s.st
	st.ControlFD = -1
	st.NotifyWarned = s.notify.warned
	if s.ctl != nil {
		if fd, err := s.ctl.fd(); err == nil {
			st.ControlFD = fd
			keep = append(keep, fd)
		}
	}
	connFDs := func(conns []net.Conn) []int {
		var fds []int
		for _, c := range conns {
			if fd, err := connFD(c); err == nil {
				fds = append(fds, fd)
				keep = append(keep, fd)
			}
		}
		return fds
	}
	for _, g := range st.Gens {
		if g.OutputFD > 0 {
			keep = append(keep, g.OutputFD)
		}
	}
	st.WaiterFDs = connFDs(s.waiters)
	st.PendingFDs = connFDs(s.pendingWaiters)
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	env := setEnv(os.Environ(), reexecEnv, "1")
	env = setEnv(env, stateEnv, string(data))
	env = unsetEnv(env, daemonEnv)
	for _, fd := range keep {
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0)
	}
	log.Noticef("re-executing on %s.", st.Trigger)
	runtime.LockOSThread()
	// The handled signals stay blocked across execve: SIGUSR1 and SIGUSR2
	// stay pending until the new image handles them, so a storm of them
	// cannot kill it. The Go runtime unblocks SIGHUP, SIGINT and SIGTERM
	// at start, before any handler of ours exists: SIGHUP is ignored over
	// the exec (a SIGHUP in that millisecond is dropped, never fatal; the
	// new image takes it over). See README "Known limits" for SIGTERM.
	signal.Ignore(unix.SIGHUP)
	var old unix.Sigset_t
	_ = unix.PthreadSigmask(unix.SIG_BLOCK, handledSigset(), &old)
	s.drainQueues() // what arrived while the exec was being prepared
	if s.stopping {
		err = errStopping
	} else {
		err = unix.Exec(s.self, os.Args, env)
	}
	_ = unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	signal.Notify(wrapperSignals, unix.SIGHUP)
	runtime.UnlockOSThread()
	s.r.mu.Unlock()
	locked = false
	if s.ctl != nil {
		s.ctl.resume(s)
	}
	for _, fd := range keep {
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
	}
	return err
}

var errStopping = errors.New("the wrapper is stopping")

// drainQueues handles everything already queued for the loop.
func (s *supervisor) drainQueues() {
	for {
		select {
		case sig := <-s.sigs:
			s.onSignal(sig.(unix.Signal))
		case ev := <-s.exits:
			s.onExit(ev)
		case f := <-s.events:
			f()
		default:
			return
		}
	}
}

// connFD returns the descriptor of a unix connection (a dup, kept open).
func connFD(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, fmt.Errorf("not a unix connection")
	}
	f, err := uc.File()
	if err != nil {
		return -1, err
	}
	return int(f.Fd()), nil // f is deliberately not closed: the fd must survive until exec
}

// restore rebuilds the supervisor from the state a previous image left.
func (s *supervisor) restore(data string) error {
	if err := json.Unmarshal([]byte(data), &s.st); err != nil {
		return fmt.Errorf("state from the previous wrapper image: %w", err)
	}
	s.notify.warned = s.st.NotifyWarned
	if s.st.ControlFD >= 0 {
		s.ctl = controlFromFD(s, s.st.ControlFD)
	}
	fdConns := func(fds []int) []net.Conn {
		var out []net.Conn
		for _, fd := range fds {
			f := os.NewFile(uintptr(fd), "control-client")
			c, err := net.FileConn(f)
			f.Close()
			if err == nil {
				out = append(out, c)
			}
		}
		return out
	}
	for _, g := range s.st.Gens {
		if g.OutputFD > 0 {
			g.out = newGenOutput(os.NewFile(uintptr(g.OutputFD), fmt.Sprintf("haproxy-%d-output", g.Pid)))
		}
	}
	s.waiters = fdConns(s.st.WaiterFDs)
	s.pendingWaiters = fdConns(s.st.PendingFDs)
	s.st.WaiterFDs, s.st.PendingFDs, s.st.ControlFD = nil, nil, -1
	return nil
}

// adoptChildren is the fallback when the state cannot be read: every child
// of this pid becomes one generation, so that stop and the -sf list still
// reach them.
func (s *supervisor) adoptChildren() {
	for _, pid := range childrenOf(os.Getpid()) {
		s.st.NextGen++
		s.st.Gens = append(s.st.Gens, &generation{Gen: s.st.NextGen, Pid: pid, Ready: true})
	}
}

// childrenOf lists a process's children from /proc/PID/task/*/children.
func childrenOf(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		pids, _ := parsePIDs(string(b))
		out = append(out, pids...)
	}
	return out
}
