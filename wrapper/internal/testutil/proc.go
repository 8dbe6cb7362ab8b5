package testutil

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Proc is a process a test started in a process group of its own.
type Proc struct {
	Cmd  *exec.Cmd
	done chan struct{}
	code int
}

// Start starts cmd in a process group of its own. At the end of the test
// the whole group gets SIGKILL (PID 1 reaps nothing on these machines: a
// stray process would stay and hold the test's output open) and the test
// waits for cmd to end, 10 s at the most.
func Start(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.code = 128 + int(ws.Signal())
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("pid %d (%s) did not end after SIGKILL", cmd.Process.Pid, cmd.Path)
		}
	})
	return p
}

// Pid is the process's pid.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Done is closed once the process ended and was waited for.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited tells whether the process ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Code is the exit code, 128+N for a process killed by signal N; it is
// known once Done is closed (-1 before).
func (p *Proc) Code() int {
	select {
	case <-p.done:
		return p.code
	default:
		return -1
	}
}
