package handoff

import (
	"fmt"
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

// sleeper starts a process that lives until killed (by the test, or by
// Start's cleanup at the end of the test).
func sleeper(t *testing.T) *testutil.Proc {
	t.Helper()
	return testutil.Start(t, exec.Command("sleep", "60"))
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
	s, exited := startSentinel(t, wrapper.Pid(), haproxy.Pid())
	defer s.Pipe.Close()
	_ = syscall.Kill(wrapper.Pid(), syscall.SIGTERM) // dies "during the exec"
	testutil.Recv(t, haproxy.Done(), 10*time.Second, fmt.Sprintf("end of haproxy (pid %d) after the wrapper died", haproxy.Pid()))
	if err := testutil.Recv(t, exited, 10*time.Second, "end of the sentinel after the wrapper died"); err != nil {
		t.Fatalf("sentinel after the wrapper died: %v", err)
	}
}

func TestSentinelReleasedLeavesHAProxy(t *testing.T) {
	wrapper, haproxy := sleeper(t), sleeper(t)
	s, exited := startSentinel(t, wrapper.Pid(), haproxy.Pid())
	Release(s.Pipe) // the new image caught its signals
	if err := testutil.Recv(t, exited, 10*time.Second, "end of the sentinel after its release"); err != nil {
		t.Fatalf("sentinel after its release: %v", err)
	}
	// The sentinel ended without a kill: haproxy must not end either.
	select {
	case <-haproxy.Done():
		t.Fatalf("haproxy (pid %d) ended although the wrapper lives: code %d", haproxy.Pid(), haproxy.Code())
	case <-time.After(200 * time.Millisecond):
	}
}
