package proc

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Exit codes of the wrapper (see README "Exit codes").
const (
	ExitOK          = 0
	ExitStartFailed = 1   // haproxy did not come up (or its exit code, when it gave one)
	ExitUsage       = 64  // bad arguments or environment
	ExitNotExec     = 126 // haproxy binary found but not executable
	ExitNotFound    = 127 // haproxy binary not found
	ExitNoChild     = 255 // no haproxy was ever reaped
)

// StatusCode maps a wait status to a shell-style exit code: the exit code, or
// 128+signal when the process was killed by a signal.
func StatusCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return ExitNoChild
}

// StopCode is the wrapper's exit code after a requested stop: 0 when haproxy
// ended the way a stop ends it (exit 0, or killed by the very signal the
// wrapper forwarded), else haproxy's own code, so that systemd sees a failure.
func StopCode(ws unix.WaitStatus, forwarded unix.Signal) int {
	if ws.Exited() && ws.ExitStatus() == 0 {
		return ExitOK
	}
	if ws.Signaled() && ws.Signal() == forwarded {
		return ExitOK
	}
	return StatusCode(ws)
}

// DescribeStatus says how a process ended, for log lines.
func DescribeStatus(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit code %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by %s", unix.SignalName(ws.Signal()))
	}
	return "unknown status"
}
