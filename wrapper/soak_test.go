package main

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/loadgen"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// TestSoakRandomDrain reloads the real haproxy HSW_SOAK_RELOADS times (the
// issue's acceptance run is 3000; `make soak`) under load, while other
// clients hold half-sent requests and let them go at random moments, so that
// old generations end at random points of later reloads. It asserts 0 failed
// requests, 0 "bad file descriptor" (or other fd errors) in the log, every
// reload ok, and a wrapper whose fd count is the same at the end. Skipped
// unless HSW_SOAK_RELOADS is set: it takes minutes.
func TestSoakRandomDrain(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("HSW_SOAK_RELOADS"))
	if n <= 0 {
		t.Skip("set HSW_SOAK_RELOADS=3000 (make soak) to run the soak")
	}
	w := startRealOpts(t, true, wrapperOpts{env: []string{"HAPROXY_WRAPPER_LOG_LEVEL=info"}})
	fdsBefore := stableFDCount(t, w.pid())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resc := make(chan loadgen.Result, 1)
	go func() { resc <- loadgen.Run(ctx, loadgen.Options{Addr: w.addr, Workers: 8, KeepAlive: 4}) }()

	// Drainers: each holds a half-sent request for a random 0-300 ms, then
	// drops it; the generation it was on ends when it is its last one.
	var wg sync.WaitGroup
	var held int
	var mu sync.Mutex
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c, err := testutil.DialHalfRequest(w.addr)
				if err != nil {
					continue // counted by the load generator's own clients
				}
				mu.Lock()
				held++
				mu.Unlock()
				d := time.Duration(rand.IntN(300)) * time.Millisecond
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
				if rand.IntN(2) == 0 {
					// Finish the request: the old generation answers it.
					_, _ = c.Write([]byte("Host: x\r\nConnection: close\r\n\r\n"))
					_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
					b := make([]byte, 512)
					_, _ = c.Read(b)
				}
				c.Close()
			}
		}()
	}
	start := time.Now()
	var slowest time.Duration
	for i := 1; i <= n; i++ {
		t0 := time.Now()
		ans, err := control.RequestText(w.ctlPath, "reload", 60*time.Second)
		if err != nil || !strings.HasPrefix(ans, "ok ") {
			t.Fatalf("reload %d: %q %v", i, ans, err)
		}
		slowest = max(slowest, time.Since(t0))
	}
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	res := <-resc
	t.Logf("%d reloads in %s (%.1f/s, slowest %s) under load: %s; %d half requests held and dropped at random",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), slowest.Round(time.Millisecond), res, held)
	if res.Failed != 0 {
		t.Errorf("%d of %d requests failed: %v %v", res.Failed, res.Sent, res.Errors, res.Samples)
	}
	out := w.out.String()
	for _, bad := range []string{"bad file descriptor", "EBADF", "use of closed"} {
		if c := strings.Count(out, bad); c != 0 {
			t.Errorf("%d log lines with %q", c, bad)
		}
	}
	// Every old generation ends once its connections are gone.
	testutil.WaitFor(t, 60*time.Second, "one generation left", func() bool { return len(w.status().Generations) == 1 })
	if after := stableFDCount(t, w.pid()); after != fdsBefore {
		t.Errorf("wrapper fds: %d before, %d after %d reloads", fdsBefore, after, n)
	}
}
