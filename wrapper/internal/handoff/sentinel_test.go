package handoff

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// TestMain lets the test binary run as the sentinel, as the wrapper binary
// does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == SentinelCommand {
		os.Exit(RunSentinel(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// testProc is a started process and the end of its wait.
type testProc struct {
	pid  int
	done chan struct{}
}

// sleeper starts a process that lives until killed, reaped by the test.
func sleeper(t *testing.T) testProc {
	t.Helper()
	c := exec.Command("sleep", "60")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	p := testProc{pid: c.Process.Pid, done: make(chan struct{})}
	go func() { _ = c.Wait(); close(p.done) }()
	t.Cleanup(func() { _ = c.Process.Kill(); <-p.done })
	return p
}

// ended waits at most d for p to end and reports whether it did.
func ended(p testProc, d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

func startSentinel(t *testing.T, guard, target int) (*Sentinel, <-chan error) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	s, err := StartSentinel(self, guard, []int{target}, func(path string, argv []string, files []*os.File) (int, error) {
		c := exec.Command(path, argv[1:]...)
		c.Stdin, c.Stdout, c.Stderr = files[0], files[1], files[2]
		c.ExtraFiles = files[3:]
		if err := c.Start(); err != nil {
			return 0, err
		}
		go func() { exited <- c.Wait() }()
		return c.Process.Pid, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, exited
}

func TestSentinelStopsHAProxyWhenTheWrapperDies(t *testing.T) {
	wrapper, haproxy := sleeper(t), sleeper(t)
	s, exited := startSentinel(t, wrapper.pid, haproxy.pid)
	defer s.Pipe.Close()
	_ = syscall.Kill(wrapper.pid, syscall.SIGTERM) // dies "during the exec"
	if !ended(haproxy, 10*time.Second) {
		t.Fatalf("haproxy (pid %d) still running 10 s after the wrapper died", haproxy.pid)
	}
	if err := testutil.ErrWithin(exited, 10*time.Second); err != nil {
		t.Fatalf("sentinel (still running 10 s after the wrapper died?): %v", err)
	}
}

func TestSentinelReleasedLeavesHAProxy(t *testing.T) {
	wrapper, haproxy := sleeper(t), sleeper(t)
	s, exited := startSentinel(t, wrapper.pid, haproxy.pid)
	Release(s.Pipe) // the new image caught its signals
	if err := testutil.ErrWithin(exited, 10*time.Second); err != nil {
		t.Fatalf("sentinel (still running 10 s after its release?): %v", err)
	}
	if ended(haproxy, 200*time.Millisecond) {
		t.Fatalf("haproxy ended although the wrapper lives")
	}
}
