package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/loadgen"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// Reloads with one parse (no separate haproxy -c by default): a bad
// configuration fails the reload with haproxy's own reason and never
// touches the serving generation, under load.

// underLoad runs f while a load generator sends requests to addr, and
// returns the load's result.
func underLoad(t *testing.T, addr string, f func()) loadgen.Result {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	resc := make(chan loadgen.Result, 1)
	go func() { resc <- loadgen.Run(ctx, loadgen.Options{Addr: addr, Workers: 6, KeepAlive: 2}) }()
	f()
	cancel()
	return <-resc
}

func TestBadConfigAtReloadWithoutCheck(t *testing.T) {
	cases := []struct {
		name   string
		extra  string // appended to the good configuration; DIR is the test folder
		reason string // in the reload's answer
	}{
		{"syntax error", "    no-such-keyword\n", "unknown keyword 'no-such-keyword'"},
		{"missing map file", "    http-request set-header X-M %[src,map(DIR/missing.map)]\n", "missing.map"},
		{"unknown backend", "    use_backend nowhere\n", "nowhere"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, cfg, good := startRealConfig(t)
			dir := w.dir
			before := faultServed(t, w)
			var ans string
			res := underLoad(t, w.addr, func() {
				bad := append(append([]byte(nil), good...), strings.ReplaceAll(tc.extra, "DIR", dir)...)
				if err := os.WriteFile(cfg, bad, 0o644); err != nil {
					t.Error(err)
					return
				}
				ans = faultReload(t, w)
			})
			if !strings.HasPrefix(ans, "error ") || !strings.Contains(ans, tc.reason) {
				t.Fatalf("reload answered %q, want an error naming %q", ans, tc.reason)
			}
			if strings.Contains(w.out.String(), "configuration check failed") {
				t.Fatalf("a separate haproxy -c ran although HAPROXY_WRAPPER_CHECK is off")
			}
			if res.Failed != 0 || res.Sent == 0 {
				t.Fatalf("load during the failed reload: %s", res)
			}
			if got := faultServed(t, w); got != before {
				t.Fatalf("served by %d after the failed reload, want the old pid %d", got, before)
			}
			t.Logf("%s: %s", tc.name, res)
			if err := os.WriteFile(cfg, good, 0o644); err != nil {
				t.Fatal(err)
			}
			faultReloadOK(t, w)
			faultStop(t, w)
		})
	}
}

func TestOptInCheckAtReload(t *testing.T) {
	dir := testutil.ShortDir(t)
	w := startRealIn(t, dir, "expose-fd listeners", true, wrapperOpts{env: []string{"HAPROXY_WRAPPER_CHECK=true"}})
	cfg := filepath.Join(dir, "haproxy.cfg")
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("    no-such-keyword\n")
	f.Close()
	ans := faultReload(t, w)
	if !strings.HasPrefix(ans, "error configuration check failed (exit code 1)") || !strings.Contains(ans, "no-such-keyword") {
		t.Fatalf("reload answered %q, want the opt-in check's failure", ans)
	}
	if n := strings.Count(w.out.String(), "started haproxy generation"); n != 1 {
		t.Fatalf("%d generations started, want 1: the check must stop the reload before a start", n)
	}
	faultStop(t, w)
}

func TestNoListenerConfigRefused(t *testing.T) {
	dir := testutil.ShortDir(t)
	w := startRealIn(t, dir, "expose-fd listeners", true, wrapperOpts{})
	cfg := filepath.Join(dir, "haproxy.cfg")
	before := faultServed(t, w)
	// No frontend and no stats socket: haproxy alone exits with "No enabled
	// listener found"; the wrapper's readiness socket must not change that.
	if err := os.WriteFile(cfg, []byte("defaults\n    mode http\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ans := faultReload(t, w)
	if !strings.HasPrefix(ans, "error ") || !strings.Contains(ans, "no listener") {
		t.Fatalf("reload answered %q, want a refusal for having no listener", ans)
	}
	if got := faultServed(t, w); got != before {
		t.Fatalf("served by %d after the refused reload, want the old pid %d", got, before)
	}
	faultStop(t, w)
}

func TestDrainLimitRetiresOldest(t *testing.T) {
	dir := testutil.ShortDir(t)
	w := startRealIn(t, dir, "expose-fd listeners", true, wrapperOpts{env: []string{"HAPROXY_WRAPPER_MAX_DRAINING=2"}})
	var pids []int
	for i := 0; i < 4; i++ {
		pids = append(pids, faultServed(t, w))
		testutil.HoldConns(t, w.addr, 1) // keeps this generation draining
		faultReloadOK(t, w)
	}
	// Four old generations, each held by a connection; at most two may
	// drain: the two oldest got SIGTERM.
	testutil.WaitFor(t, 15*time.Second, "the two oldest generations to end", func() bool {
		return !proc.Alive(pids[0]) && !proc.Alive(pids[1])
	})
	st := w.status()
	if st.DrainRetired != 2 || st.Draining != 2 {
		t.Fatalf("status: drain_retired %d, draining %d; want 2 and 2", st.DrainRetired, st.Draining)
	}
	if !proc.Alive(pids[2]) || !proc.Alive(pids[3]) {
		t.Fatalf("the two newest old generations were retired too")
	}
	faultWantLine(t, w, "<4>haproxy-systemd-wrapper: haproxy generation 1 (pid ", "retired with SIGTERM", "HAPROXY_WRAPPER_MAX_DRAINING")
	faultStop(t, w)
}

func TestDrainAgeRetires(t *testing.T) {
	dir := testutil.ShortDir(t)
	w := startRealIn(t, dir, "expose-fd listeners", true, wrapperOpts{env: []string{"HAPROXY_WRAPPER_MAX_DRAIN_AGE=300ms"}})
	old := faultServed(t, w)
	testutil.HoldConns(t, w.addr, 1)
	faultReloadOK(t, w)
	testutil.WaitFor(t, 10*time.Second, "the draining generation to be retired", func() bool { return !proc.Alive(old) })
	faultWantLine(t, w, "retired with SIGTERM", "HAPROXY_WRAPPER_MAX_DRAIN_AGE")
	if st := w.status(); st.DrainRetired != 1 {
		t.Fatalf("drain_retired = %d, want 1", st.DrainRetired)
	}
	faultStop(t, w)
}

// TestConfigRewrittenDuringReloadBurst rewrites the configuration in place
// (truncate, then a few writes) while reloads are triggered in a burst: no
// generation may start from a half-written file and take over.
func TestConfigRewrittenDuringReloadBurst(t *testing.T) {
	w, cfg, good := startRealConfig(t)
	for run := 0; run < 3; run++ {
		res := underLoad(t, w.addr, func() {
			var wg sync.WaitGroup
			stop := make(chan struct{})
			wg.Add(1)
			go func() { // the writer: in place, in pieces
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					f, err := os.OpenFile(cfg, os.O_WRONLY|os.O_TRUNC, 0)
					if err != nil {
						t.Error(err)
						return
					}
					for off := 0; off < len(good); off += 64 {
						f.Write(good[off:min(off+64, len(good))])
						time.Sleep(200 * time.Microsecond) // the writer's own pace, not a synchronisation
					}
					f.Close()
				}
			}()
			for i := 0; i < 50; i++ {
				w.signal(syscall.SIGUSR2)
				time.Sleep(2 * time.Millisecond) // the burst's pace
			}
			close(stop)
			wg.Wait()
			if err := os.WriteFile(cfg, good, 0o644); err != nil {
				t.Error(err)
			}
			w.signal(syscall.SIGUSR2)
			testutil.WaitFor(t, 30*time.Second, "the reloads to settle", func() bool {
				st := w.status()
				return !st.ReloadInProgress && !st.ReloadPending
			})
		})
		t.Logf("run %d: %s", run, res)
		if res.Failed != 0 {
			t.Fatalf("run %d: %d of %d requests failed: %v %v", run, res.Failed, res.Sent, res.Errors, res.Samples)
		}
	}
	if _, err := servedBy(w.addr); err != nil {
		t.Fatalf("not serving after the burst: %v", err)
	}
	faultStop(t, w)
}
