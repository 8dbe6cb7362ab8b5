package testutil

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestStartExitCodes(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"kill -TERM $$", 143},
	} {
		p := Start(t, exec.Command("/bin/sh", "-c", tc.script))
		select {
		case <-p.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%q still running after 10 s", tc.script)
		}
		if got := p.Code(); got != tc.want {
			t.Errorf("%q: code %d, want %d", tc.script, got, tc.want)
		}
		if !p.Exited() {
			t.Errorf("%q: Exited false after Done", tc.script)
		}
	}
}

func TestStartRunningHasNoCode(t *testing.T) {
	p := Start(t, exec.Command("/bin/sleep", "60")) // killed by Start's cleanup
	if got := p.Code(); got != -1 || p.Exited() {
		t.Errorf("running process: code %d, exited %v; want -1, false", got, p.Exited())
	}
}

func TestPollGivesTheLastDescription(t *testing.T) {
	n := 0
	err := Poll(30*time.Millisecond, time.Millisecond, func() (bool, string) {
		n++
		return false, "seen " + strings.Repeat("x", n%2+1)
	})
	if err == nil || !strings.Contains(err.Error(), "last seen: seen x") {
		t.Fatalf("Poll = %v, want a timeout naming the last description", err)
	}
	if err := Poll(time.Second, time.Millisecond, func() (bool, string) { n++; return n > 100, "" }); err != nil {
		t.Fatalf("Poll of a condition that comes true: %v", err)
	}
}

func TestErrWithin(t *testing.T) {
	ch := make(chan error, 1)
	if err := ErrWithin(ch, 10*time.Millisecond); err == nil {
		t.Fatalf("ErrWithin of an empty channel: nil, want a timeout")
	}
	want := errors.New("boom")
	ch <- want
	if err := ErrWithin(ch, time.Second); err != want {
		t.Fatalf("ErrWithin = %v, want %v", err, want)
	}
	ch <- nil
	if err := ErrWithin(ch, time.Second); err != nil {
		t.Fatalf("ErrWithin = %v, want nil", err)
	}
}
