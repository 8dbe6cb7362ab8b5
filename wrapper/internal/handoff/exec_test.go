package handoff

import (
	"errors"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// TestExecFailureLeavesStateUntouched: an exec that does not happen closes
// what it made and leaves the handed files as they were (non-blocking, in
// the poller, usable).
func TestExecFailureLeavesStateUntouched(t *testing.T) {
	before := Inheritable()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	dir := testutil.ShortDir(t)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	// The stop signals take their default action only over the exec: after
	// a failed one, a SIGUSR1 reaches its channel again (its default
	// action would end the test binary).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGUSR1)
	defer signal.Stop(sigs)

	missing := filepath.Join(dir, "does-not-exist")
	lastCalled := false
	err = Exec(missing, []string{missing}, os.Environ(), map[string]int{"x": 1}, []Named{{Name: "pipe", Conn: pr}, {Name: "listener", Conn: ln}},
		[]unix.Signal{unix.SIGUSR1}, []unix.Signal{unix.SIGUSR2}, func() bool { lastCalled = true; return true })
	if err == nil {
		t.Fatal("Exec of a missing path returned nil")
	}
	t.Logf("Exec: %v", err)
	if !lastCalled {
		t.Error("Exec did not call last before the exec")
	}
	if err := unix.Kill(os.Getpid(), unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sigs:
	case <-time.After(5 * time.Second):
		t.Fatal("SIGUSR1 after the failed exec did not reach its channel within 5 s: its disposition was not put back")
	}

	if after := Inheritable(); !reflect.DeepEqual(after, before) {
		t.Errorf("inheritable descriptors after the failed exec = %v, before = %v", after, before)
	}
	if err := pr.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatalf("pipe SetReadDeadline after the failed exec: %v", err)
	}
	start := time.Now()
	n, err := pr.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("pipe read after the failed exec = %d, %v after %s; want os.ErrDeadlineExceeded (still pollable)", n, err, time.Since(start))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("pipe read deadline honoured only after %s", d)
	}

	dialErr := make(chan error, 1)
	go func() {
		c, err := net.DialTimeout("unix", filepath.Join(dir, "s"), 2*time.Second)
		if err == nil {
			c.Close()
		}
		dialErr <- err
	}()
	if err := ln.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatalf("listener SetDeadline after the failed exec: %v", err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("listener Accept after the failed exec: %v", err)
	}
	c.Close()
	if err := <-dialErr; err != nil {
		t.Fatalf("dial: %v", err)
	}
}
