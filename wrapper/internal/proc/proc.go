// Package proc starts and reaps processes and reads what /proc says of them.
// One goroutine waits for children (Reaper: wait4(-1, WNOHANG) on SIGCHLD);
// nothing else in the wrapper waits.
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ONoFollow is O_NOFOLLOW, for files created in private folders.
const ONoFollow = unix.O_NOFOLLOW

// Exit is one reaped process.
type Exit struct {
	Pid int
	WS  unix.WaitStatus
}

// Reaper is the one place that waits for children: a wait4(-1, WNOHANG) loop
// run on every SIGCHLD. A process started through Spawn has its exit sent to
// the channel given there; every other reaped pid (daemonized descendants
// adopted because the wrapper is a child subreaper) goes to Other.
type Reaper struct {
	mu      sync.Mutex
	waiters map[int]chan<- Exit
	other   chan Exit
	held    bool
	sigchld chan os.Signal
	done    chan struct{}
}

// NewReaper starts catching SIGCHLD; Run reaps.
func NewReaper() *Reaper {
	r := &Reaper{waiters: map[int]chan<- Exit{}, other: make(chan Exit, 1024), sigchld: make(chan os.Signal, 1), done: make(chan struct{})}
	signal.Notify(r.sigchld, unix.SIGCHLD)
	return r
}

// Other receives the exits of processes nobody registered.
func (r *Reaper) Other() <-chan Exit { return r.other }

// Drain reaps every child that has ended.
func (r *Reaper) Drain() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held {
		return
	}
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
		ev := Exit{Pid: pid, WS: ws}
		if ch, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			ch <- ev // buffered by Spawn's contract
			continue
		}
		select {
		case r.other <- ev:
		default:
		}
	}
}

// Run reaps on every SIGCHLD until ctx ends; it returns once it stopped.
func (r *Reaper) Run(ctx context.Context) {
	defer close(r.done)
	defer signal.Stop(r.sigchld)
	r.Drain()                        // children that ended while nobody listened (e.g. across a re-exec)
	t := time.NewTicker(time.Second) // a safety net: SIGCHLD coalesces
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.sigchld:
		case <-t.C:
		}
		r.Drain()
	}
}

// Hold stops reaping until Release (a hand-off to a new image must find
// every ended child still unreaped, so that no exit is lost).
func (r *Reaper) Hold() {
	r.mu.Lock()
	r.held = true
	r.mu.Unlock()
}

// Release undoes Hold and reaps what ended meanwhile.
func (r *Reaper) Release() {
	r.mu.Lock()
	r.held = false
	r.mu.Unlock()
	r.Drain()
}

// Watch registers pid (a child inherited from an earlier image) so that its
// exit goes to ch (buffered).
func (r *Reaper) Watch(pid int, ch chan<- Exit) {
	r.mu.Lock()
	r.waiters[pid] = ch
	r.mu.Unlock()
}

// HandledSignals are the signals the wrapper handles. They are blocked
// across a re-exec and unblocked again for every child.
var HandledSignals = []unix.Signal{unix.SIGUSR1, unix.SIGUSR2, unix.SIGHUP, unix.SIGTERM, unix.SIGINT, unix.SIGCHLD, unix.SIGABRT}

// Sigset is the set of the given signals.
func Sigset(sigs []unix.Signal) *unix.Sigset_t {
	var set unix.Sigset_t
	for _, s := range sigs {
		n := uint(s) - 1
		set.Val[n/64] |= 1 << (n % 64)
	}
	return &set
}

// SpawnError says why a program could not be started, for the exit code.
type SpawnError struct {
	Path string
	Err  error
}

func (e *SpawnError) Error() string {
	switch {
	case errors.Is(e.Err, unix.ENOENT):
		return fmt.Sprintf("%s: not found: install haproxy or set HAPROXY_BIN", e.Path)
	case errors.Is(e.Err, unix.EACCES):
		return fmt.Sprintf("%s: not executable (permission denied): chmod +x it or set HAPROXY_BIN", e.Path)
	case errors.Is(e.Err, unix.ENOEXEC):
		return fmt.Sprintf("%s: not an executable format: set HAPROXY_BIN to the haproxy binary", e.Path)
	}
	return fmt.Sprintf("start %s: %v", e.Path, e.Err)
}

func (e *SpawnError) Unwrap() error { return e.Err }

// ExitCode is the wrapper's exit code for this failure (126 or 127).
func (e *SpawnError) ExitCode() int {
	if errors.Is(e.Err, unix.ENOENT) {
		return ExitNotFound
	}
	return ExitNotExec
}

// Spawn starts path with argv and env; files become the child's fds 0, 1, 2,
// 3... (each is duplicated for the child only: their own flags are not
// touched). The exit is sent to ch, which must have room for it. The child
// gets default signal dispositions (Go resets the ones it handles) and an
// empty mask for the signals the wrapper handles, even when this image
// inherited them blocked.
func (r *Reaper) Spawn(path string, argv, env []string, files []*os.File, ch chan<- Exit) (int, error) {
	fds := make([]uintptr, len(files))
	for i, f := range files {
		fd, err := rawFD(f)
		if err != nil {
			return 0, &SpawnError{Path: path, Err: err}
		}
		fds[i] = fd
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_ = unix.PthreadSigmask(unix.SIG_UNBLOCK, Sigset(HandledSignals), nil)
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: env, Files: fds})
	for _, f := range files {
		runtime.KeepAlive(f)
	}
	if err != nil {
		return 0, &SpawnError{Path: path, Err: err}
	}
	r.waiters[pid] = ch
	return pid, nil
}

// rawFD is f's descriptor, read without File.Fd (which would switch a
// pollable file to blocking mode).
func rawFD(f *os.File) (uintptr, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var fd uintptr
	if err := rc.Control(func(x uintptr) { fd = x }); err != nil {
		return 0, err
	}
	return fd, nil
}

// RunCapture runs a short command (haproxy -v, haproxy -c) and returns its
// combined output and wait status. It is killed (SIGKILL) when ctx ends, and
// RunCapture returns once it has been reaped: no fixed wait.
func (r *Reaper) RunCapture(ctx context.Context, path string, argv, env []string) (string, unix.WaitStatus, error) {
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
	ch := make(chan Exit, 1)
	pid, err := r.Spawn(path, argv, env, []*os.File{devnull, pw, pw}, ch)
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
	var ev Exit
	var cerr error
	select {
	case ev = <-ch:
	case <-ctx.Done():
		_ = unix.Kill(pid, unix.SIGKILL) // our unreaped child: its pid is ours
		ev = <-ch
		cerr = ctx.Err()
	}
	// The output is read to its end unless a descendant holds the pipe:
	// then it is cut, bounded.
	_ = pr.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	return string(<-out), ev.WS, cerr
}

// Stat reads a process's state letter and parent pid from /proc/PID/stat in
// one read; a process that is gone gives "" and 0.
func Stat(pid int) (state string, ppid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0
	}
	return ParseStat(string(b))
}

// ParseStat parses a /proc/PID/stat line; the command name in parentheses
// may itself hold spaces and parentheses, so the fields are read after the
// last ')'.
func ParseStat(stat string) (state string, ppid int) {
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

// Alive tells whether pid exists (a zombie counts as gone).
func Alive(pid int) bool {
	st, _ := Stat(pid)
	return Running(st)
}

// Running tells whether a /proc state letter is a live process's.
func Running(state string) bool { return state != "" && state != "Z" && state != "X" }

// ParentOf returns the parent pid of pid from /proc, or 0.
func ParentOf(pid int) int {
	_, ppid := Stat(pid)
	return ppid
}

// ChildrenOf lists a process's children from /proc/PID/task/*/children.
func ChildrenOf(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		pids, _ := ParsePIDs(string(b))
		out = append(out, pids...)
	}
	return out
}

// StopChildren ends every child of this process after an upgrade's
// hand-off that cannot be read (the children are this image's, their state
// unknown: none is left unsupervised): SIGTERM to each, then a wait for as
// many exits.
func StopChildren() {
	kids := ChildrenOf(os.Getpid())
	for _, p := range kids {
		_ = unix.Kill(p, unix.SIGTERM)
	}
	for range kids {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(-1, &ws, 0, nil); errors.Is(err, unix.ECHILD) {
			break
		}
	}
}

// SelfPath is the running binary, absolute (a relative argv[0] must not
// break a re-exec); " (deleted)" is cut when the file was removed.
func SelfPath() string {
	if p, err := os.Executable(); err == nil {
		return strings.TrimSuffix(p, " (deleted)")
	}
	p, _ := os.Readlink("/proc/self/exe")
	return strings.TrimSuffix(p, " (deleted)")
}
