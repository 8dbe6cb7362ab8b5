package proc

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestExitCodes(t *testing.T) {
	exited := func(c int) unix.WaitStatus { return unix.WaitStatus(c << 8) }
	signaled := func(s unix.Signal) unix.WaitStatus { return unix.WaitStatus(s) }
	tests := []struct {
		name      string
		ws        unix.WaitStatus
		forwarded unix.Signal
		status    int
		stop      int
	}{
		{"exit 0", exited(0), unix.SIGTERM, 0, 0},
		{"exit 1", exited(1), unix.SIGTERM, 1, 1},
		{"killed by the forwarded SIGTERM", signaled(unix.SIGTERM), unix.SIGTERM, 143, 0},
		{"killed by the forwarded SIGINT", signaled(unix.SIGINT), unix.SIGINT, 130, 0},
		{"SIGKILL", signaled(unix.SIGKILL), unix.SIGTERM, 137, 137},
		{"SIGTERM when SIGUSR1 was forwarded", signaled(unix.SIGTERM), unix.SIGUSR1, 143, 143},
	}
	for _, tt := range tests {
		if got := StatusCode(tt.ws); got != tt.status {
			t.Errorf("%s: StatusCode = %d, want %d", tt.name, got, tt.status)
		}
		if got := StopCode(tt.ws, tt.forwarded); got != tt.stop {
			t.Errorf("%s: StopCode = %d, want %d", tt.name, got, tt.stop)
		}
	}
}
