package testutil

import (
	"fmt"
	"testing"
	"time"
)

// Poll checks cond every interval until it holds or timeout passes; the
// error carries cond's last description. For a condition no event announces
// (a log line, a status, a file): an event that can be awaited is awaited,
// not polled.
func Poll(timeout, interval time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, desc := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not reached within %v; last seen: %s", timeout, desc)
		}
		time.Sleep(interval)
	}
}

// WaitFor polls cond every 10 ms until it holds, and fails the test once
// timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := Poll(timeout, 10*time.Millisecond, func() (bool, string) { return cond(), "" }); err != nil {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// Recv receives one value from ch, failing the test after d.
func Recv[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case v := <-ch:
		return v
	case <-tm.C:
		t.Fatalf("no %s within %s", what, d)
		var zero T
		return zero
	}
}
