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
	// the loop, block the signals, then handle everything queued, and only
	// then write down the state.
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if s.ctl != nil {
		s.ctl.pause(s)
		defer func() { s.ctl.resume(s) }() // reached only when the exec failed
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// The handled signals stay blocked across execve: SIGUSR1 and SIGUSR2
	// stay pending until the new image handles them, so a storm of them
	// cannot kill it. The Go runtime unblocks SIGHUP, SIGINT and SIGTERM
	// at start, before any handler of ours exists: SIGHUP is ignored over
	// the exec (a SIGHUP in that millisecond is dropped, never fatal; the
	// new image takes it over). See README "Known limits" for SIGTERM.
	signal.Ignore(unix.SIGHUP)
	defer signal.Notify(wrapperSignals, unix.SIGHUP)
	var old unix.Sigset_t
	_ = unix.PthreadSigmask(unix.SIG_BLOCK, handledSigset(), &old)
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	s.drainQueues()
	if s.stopping {
		return errStopping
	}

	// The descriptors that cross: the control socket, the waiting clients'
	// connections (dups, closed again if the exec fails) and each
	// generation's output pipe.
	st := s.st
	st.ControlFD = -1
	st.NotifyWarned = s.notify.warned
	var dups []*os.File
	defer func() {
		for _, f := range dups {
			f.Close()
		}
	}()
	var keep []int
	dup := func(f *os.File, err error) int {
		if err != nil {
			return -1
		}
		dups = append(dups, f)
		keep = append(keep, int(f.Fd()))
		return int(f.Fd())
	}
	if s.ctl != nil {
		st.ControlFD = dup(s.ctl.ln.File())
	}
	connFDs := func(conns []net.Conn) []int {
		var fds []int
		for _, c := range conns {
			if uc, ok := c.(*net.UnixConn); ok {
				if fd := dup(uc.File()); fd >= 0 {
					fds = append(fds, fd)
				}
			}
		}
		return fds
	}
	st.WaiterFDs = connFDs(s.waiters)
	st.PendingFDs = connFDs(s.pendingWaiters)
	for _, g := range st.Gens {
		if g.OutputFD > 0 {
			keep = append(keep, g.OutputFD)
		}
	}
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
	defer func() {
		for _, fd := range keep {
			_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}()
	log.Noticef("re-executing on %s.", st.Trigger)
	return unix.Exec(s.self, os.Args, env)
}

var errStopping = errors.New("the wrapper is stopping")

// drainQueues handles everything already queued for the loop.
func (s *supervisor) drainQueues() {
	for s.step(false) {
	}
}

// closedChan is always ready: the "nothing queued" case of step.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// step handles one signal, exit or event. With wait it blocks until one
// comes; without, it returns false once nothing is queued (select picks
// among ready cases at random, so "nothing" is believed only when every
// queue is empty).
func (s *supervisor) step(wait bool) bool {
	var nothing chan struct{}
	if !wait {
		nothing = closedChan
	}
	select {
	case sig := <-s.sigs:
		s.onSignal(sig.(unix.Signal))
	case ev := <-s.exits:
		s.onExit(ev)
	case f := <-s.events:
		f()
	case <-nothing:
		return len(s.sigs)+len(s.exits)+len(s.events) > 0
	}
	return true
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
