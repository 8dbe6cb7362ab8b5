package handoff

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The sentinel guards an upgrade's exec. The Go runtime of the new image
// unblocks SIGTERM and SIGINT while it starts, before any handler of the
// program exists: a stop signal in that window (well under a millisecond)
// kills the wrapper, and haproxy would be left running unsupervised. So
// before the exec the wrapper starts its own binary as a sentinel child,
// holding pidfds of the wrapper and of every haproxy process, and a pipe
// whose write end crosses the exec. The new image closes it as soon as its
// signal handlers are in place; the sentinel then exits. If instead the
// wrapper dies, the sentinel sends SIGTERM to every haproxy process through
// its pidfd (never to a reused pid) and exits: the stop the signal asked for
// happens anyway.

// SentinelCommand is the hidden wrapper command the sentinel runs.
const SentinelCommand = "handoff-sentinel"

// sentinelLife bounds the sentinel's life: an exec takes milliseconds.
const sentinelLife = time.Minute

// Sentinel is a started sentinel, seen from the wrapper.
type Sentinel struct {
	Pipe *os.File // the release pipe's write end (handed over to the new image)
	Pid  int
}

// Release tells the sentinel to go: a byte, then the pipe's end. A pipe that
// ends without the byte means its holder died.
func Release(pipe *os.File) {
	_, _ = pipe.Write([]byte{'r'})
	pipe.Close()
}

// StartSentinel starts self as the sentinel of process guard (the wrapper)
// for the haproxy pids, through spawn (files become its fds 0, 1, 2, 3...).
func StartSentinel(self string, guard int, pids []int, spawn func(path string, argv []string, files []*os.File) (int, error)) (*Sentinel, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	files := []*os.File{devnull, os.Stderr, os.Stderr, r}
	me, err := unix.PidfdOpen(guard, 0)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("pidfd of the wrapper: %w", err)
	}
	mef := os.NewFile(uintptr(me), "pidfd-wrapper")
	defer mef.Close()
	files = append(files, mef)
	for _, p := range pids {
		fd, err := unix.PidfdOpen(p, 0)
		if err != nil {
			continue // already gone
		}
		f := os.NewFile(uintptr(fd), fmt.Sprintf("pidfd-%d", p))
		defer f.Close()
		files = append(files, f)
	}
	pid, err := spawn(self, []string{self, SentinelCommand, strconv.Itoa(len(files) - 5)}, files)
	if err != nil {
		w.Close()
		return nil, err
	}
	return &Sentinel{Pipe: w, Pid: pid}, nil
}

// RunSentinel is the sentinel's body: fd 3 is the release pipe, fd 4 the
// wrapper's pidfd, fds 5 to 5+n-1 haproxy's pidfds (n is its argument). It
// returns its exit code.
func RunSentinel(args []string) int {
	signal.Ignore(unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGPIPE)
	const release, wrapper = 3, 4
	n := 0
	if len(args) == 1 {
		n, _ = strconv.Atoi(args[0])
	}
	if n < 0 || n > 1<<16 {
		return 64
	}
	var targets []int
	for fd := 5; fd < 5+n; fd++ {
		targets = append(targets, fd)
	}
	deadline := time.Now().Add(sentinelLife)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return 0
		}
		fds := []unix.PollFd{{Fd: release, Events: unix.POLLIN}, {Fd: wrapper, Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 1
		}
		if n == 0 {
			continue
		}
		if fds[1].Revents == 0 {
			// The release pipe: a byte is a release; its end without a
			// byte is its holder's death (whose exit the pidfd shows a
			// moment later: a dying process closes its files first).
			b := make([]byte, 1)
			if k, _ := unix.Read(release, b); k == 1 {
				return 0
			}
			alive := []unix.PollFd{{Fd: wrapper, Events: unix.POLLIN}}
			if k, _ := unix.Poll(alive, 5000); k == 0 {
				return 0 // closed by a live wrapper: nothing to guard
			}
		}
		for _, t := range targets {
			_ = unix.PidfdSendSignal(t, unix.SIGTERM, nil, 0)
		}
		fmt.Fprintf(os.Stderr, "<3>haproxy-systemd-wrapper: the wrapper died during its upgrade's exec: SIGTERM sent to %d haproxy process(es)\n", len(targets))
		return 0
	}
}
