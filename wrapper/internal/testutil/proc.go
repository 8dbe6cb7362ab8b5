package testutil

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// Proc is a process a test started in a process group of its own.
type Proc struct {
	Cmd  *exec.Cmd
	done chan struct{}
}

// Start starts cmd in a process group of its own. At the end of the test
// the whole group gets SIGKILL (PID 1 reaps nothing on these machines: a
// stray process would stay and hold the test's output open) and the test
// waits for cmd to end, 10 s at the most.
func Start(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	p, err := StartGroup(cmd)
	if err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
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

// StartGroup starts cmd in a process group of its own and waits for it in
// the background; ending the group is the caller's business (Start ends it
// at the end of the test; the bench, which has no test, ends its own).
func StartGroup(cmd *exec.Cmd) (*Proc, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
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

// Code is the exit code, 128+N for a process killed by signal N
// (proc.StatusCode); it is known once Done is closed (-1 before).
func (p *Proc) Code() int {
	if !p.Exited() || p.Cmd.ProcessState == nil { // nil: the wait itself failed
		return -1
	}
	return proc.StatusCode(unix.WaitStatus(p.Cmd.ProcessState.Sys().(syscall.WaitStatus)))
}

// Nobody is the uid and gid of the other user in tests.
const Nobody = 65534

// Self is the path of the running test binary.
func Self(t testing.TB) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return self
}

// PlaceSelf puts the test binary into dir under name, as a symlink, or as
// a copy (to delete or replace it, or for another user to run it); it
// returns the path.
func PlaceSelf(t testing.TB, dir, name string, copyIt bool) string {
	t.Helper()
	dst := filepath.Join(dir, name)
	if !copyIt {
		if err := os.Symlink(Self(t), dst); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	b, err := os.ReadFile(Self(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// AsNobody returns a command that runs the test binary, copied under name
// into a folder nobody can reach, as uid and gid Nobody (a test binary
// impersonates a program by its name or its environment: see each
// package's TestMain). Without root the test is skipped.
func AsNobody(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as another user")
	}
	dir := ShortDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := exec.Command(PlaceSelf(t, dir, name, true), args...)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: Nobody, Gid: Nobody}}
	return c
}

// Squat serves a unix socket at path the way a hostile local user would:
// it prints "listening" once the socket is there (mode 0777), then answers
// every connection's first line with answer. It returns only on an error
// (for a TestMain that impersonates the squatter).
func Squat(path, answer string) int {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_ = os.Chmod(path, 0o777)
	fmt.Println("listening")
	for {
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		_, _ = bufio.NewReader(c).ReadString('\n')
		fmt.Fprintln(c, answer)
		c.Close()
	}
}
