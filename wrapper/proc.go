package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// exitEvent is one reaped process.
type exitEvent struct {
	pid int
	ws  unix.WaitStatus
}

// reaper is the one place that waits for children: a wait4(-1, WNOHANG) loop
// run on every SIGCHLD. Processes started through it can ask for their own
// exit; every other reaped pid (daemonized descendants adopted because the
// wrapper is a child subreaper) goes to the fallback channel.
type reaper struct {
	mu       sync.Mutex
	waiters  map[int]chan exitEvent
	fallback chan exitEvent
}

func newReaper(fallback chan exitEvent) *reaper {
	return &reaper{waiters: map[int]chan exitEvent{}, fallback: fallback}
}

// drain reaps every child that has ended.
func (r *reaper) drain() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if !ws.Exited() && !ws.Signaled() {
			continue // stopped or continued: not an end
		}
		ev := exitEvent{pid: pid, ws: ws}
		if ch, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			ch <- ev // buffered, one event per pid
			continue
		}
		select {
		case r.fallback <- ev:
		default:
			log.Debugf("reaped pid %d (%s), nobody waiting", pid, describeStatus(ws))
		}
	}
}

// run reaps on every SIGCHLD until ctx ends.
func (r *reaper) run(ctx context.Context, sigchld <-chan os.Signal) {
	r.drain()                        // children that ended while nobody listened (e.g. across a re-exec)
	t := time.NewTicker(time.Second) // a safety net: SIGCHLD coalesces
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sigchld:
		case <-t.C:
		}
		r.drain()
	}
}

// killPending ends the short commands still running (a configuration check
// when a stop came in the middle of a reload) and reaps them, bounded.
func (r *reaper) killPending() {
	r.mu.Lock()
	var chans []chan exitEvent
	for pid, ch := range r.waiters {
		_ = unix.Kill(pid, unix.SIGKILL) // unreaped children: their pids are ours
		chans = append(chans, ch)
	}
	r.mu.Unlock()
	for _, ch := range chans {
		select {
		case ev := <-ch:
			ch <- ev // leave it for its reader
		case <-time.After(2 * time.Second):
		}
	}
}

// handledSignals are the signals the wrapper handles. They are blocked across
// a re-exec (so that a signal storm cannot kill the new image before it
// installed its handlers) and unblocked again for every child.
var handledSignals = []unix.Signal{unix.SIGUSR1, unix.SIGUSR2, unix.SIGHUP, unix.SIGTERM, unix.SIGINT, unix.SIGCHLD}

func handledSigset() *unix.Sigset_t {
	var set unix.Sigset_t
	for _, s := range handledSignals {
		n := uint(s) - 1
		set.Val[n/64] |= 1 << (n % 64)
	}
	return &set
}

// spawnError says why a program could not be started, for the exit code.
type spawnError struct {
	path string
	err  error
}

func (e *spawnError) Error() string {
	switch {
	case errors.Is(e.err, unix.ENOENT):
		return fmt.Sprintf("%s: not found: install haproxy or set HAPROXY_BIN", e.path)
	case errors.Is(e.err, unix.EACCES):
		return fmt.Sprintf("%s: not executable (permission denied): chmod +x it or set HAPROXY_BIN", e.path)
	case errors.Is(e.err, unix.ENOEXEC):
		return fmt.Sprintf("%s: not an executable format: set HAPROXY_BIN to the haproxy binary", e.path)
	}
	return fmt.Sprintf("start %s: %v", e.path, e.err)
}

func (e *spawnError) Unwrap() error { return e.err }

func (e *spawnError) exitCode() int {
	if errors.Is(e.err, unix.ENOENT) {
		return exitNotFound
	}
	return exitNotExec
}

// spawn starts path with argv and env; files become the child's fds 0, 1, 2,
// 3... Its exit is sent to ch (buffered). The child gets default signal
// dispositions (Go resets the ones it handles) and an empty mask for the
// signals the wrapper handles, even when this image inherited them blocked.
func (r *reaper) spawn(path string, argv, env []string, files []uintptr, ch chan exitEvent) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_ = unix.PthreadSigmask(unix.SIG_UNBLOCK, handledSigset(), nil)
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: env, Files: files})
	if err != nil {
		return 0, &spawnError{path: path, err: err}
	}
	r.waiters[pid] = ch
	return pid, nil
}

// runCapture runs a short command (haproxy -v, haproxy -c) through the reaper
// and returns its combined output and wait status; it is killed after timeout.
func (r *reaper) runCapture(path string, argv, env []string, timeout time.Duration) (string, unix.WaitStatus, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return "", 0, err
	}
	defer pr.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		pw.Close()
		return "", 0, err
	}
	defer devnull.Close()
	ch := make(chan exitEvent, 1)
	pid, err := r.spawn(path, argv, env, []uintptr{devnull.Fd(), pw.Fd(), pw.Fd()}, ch)
	pw.Close()
	if err != nil {
		return "", 0, err
	}
	out := make(chan []byte, 1)
	go func() {
		var buf bytes.Buffer
		b := make([]byte, 32<<10)
		for {
			n, err := pr.Read(b)
			if buf.Len() < 1<<20 {
				buf.Write(b[:n])
			}
			if err != nil {
				break
			}
		}
		out <- buf.Bytes()
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case ev := <-ch:
		return string(<-out), ev.ws, nil
	case <-timer.C:
		_ = unix.Kill(pid, unix.SIGKILL)
		ev := <-ch
		return string(<-out), ev.ws, fmt.Errorf("%s did not finish within %s (killed)", path, timeout)
	}
}

func describeStatus(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit code %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by %s", unix.SignalName(ws.Signal()))
	}
	return "unknown status"
}

// procStat reads a process's state letter and parent pid from
// /proc/PID/stat in one read; a process that is gone gives "" and 0.
func procStat(pid int) (state string, ppid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0
	}
	return parseStat(string(b))
}

// parseStat parses a /proc/PID/stat line; the command name in parentheses
// may itself hold spaces and parentheses, so the fields are read after the
// last ')'.
func parseStat(stat string) (state string, ppid int) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return "", 0
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return "", 0
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid
}

// alive tells whether pid exists (a zombie counts as gone).
func alive(pid int) bool {
	st, _ := procStat(pid)
	return running(st)
}

// running tells whether a /proc state letter is a live process's.
func running(state string) bool { return state != "" && state != "Z" && state != "X" }

// parentOf returns the parent pid of pid from /proc, or 0.
func parentOf(pid int) int {
	_, ppid := procStat(pid)
	return ppid
}
