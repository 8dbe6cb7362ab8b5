package main

import "golang.org/x/sys/unix"

// Exit codes of the wrapper (see README "Exit codes").
const (
	exitOK          = 0
	exitStartFailed = 1   // haproxy did not come up (or its exit code, when it gave one)
	exitUsage       = 64  // bad arguments or environment
	exitNotExec     = 126 // haproxy binary found but not executable
	exitNotFound    = 127 // haproxy binary not found
	exitNoChild     = 255 // no haproxy was ever reaped
)

// statusCode maps a wait status to a shell-style exit code: the exit code, or
// 128+signal when the process was killed by a signal.
func statusCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return exitNoChild
}

// stopCode is the wrapper's exit code after a requested stop: 0 when haproxy
// ended the way a stop ends it (exit 0, or killed by the very signal the
// wrapper forwarded), else haproxy's own code, so that systemd sees a failure.
func stopCode(ws unix.WaitStatus, forwarded unix.Signal) int {
	if ws.Exited() && ws.ExitStatus() == 0 {
		return exitOK
	}
	if ws.Signaled() && ws.Signal() == forwarded {
		return exitOK
	}
	return statusCode(ws)
}
