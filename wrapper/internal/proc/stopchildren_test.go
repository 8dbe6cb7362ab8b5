package proc

import (
	"errors"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStopChildren: every child gets SIGTERM and is reaped (no zombie is
// left: its pid is gone).
func TestStopChildren(t *testing.T) {
	var pids []int
	for range 2 {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, cmd.Process.Pid)
	}
	StopChildren()
	for _, p := range pids {
		if err := unix.Kill(p, 0); !errors.Is(err, unix.ESRCH) {
			t.Errorf("child %d still there after StopChildren (kill 0: %v)", p, err)
			_ = unix.Kill(p, unix.SIGKILL)
		}
	}
}
