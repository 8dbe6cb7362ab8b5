package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// TestFakeExchangeVariants: the fake haproxy speaks both variants of the
// socket exchange (1.8-2.2 send the listener options, 2.3 and later zero).
// For each, reloads and a crash's respawn hand the first generation's very
// listening socket to every later one through the wrapper's own hand-over
// socket, with the options field exactly as the first generation sent it.
func TestFakeExchangeVariants(t *testing.T) {
	for _, v := range []struct{ version string }{{"2.2.0"}, {"2.6.0"}} {
		t.Run(v.version, func(t *testing.T) {
			f := newFake(t)
			socksLog := filepath.Join(f.dir, "socks.log")
			w := startWrapper(t, f.dir, wrapperOpts{env: f.env("FAKE_VERSION=HAProxy version "+v.version+" fake", "FAKE_SOCKS_LOG="+socksLog)})
			for i := 0; i < 2; i++ {
				if ans, err := control.RequestText(w.ctlPath, "reload", 30*time.Second); err != nil || !strings.HasPrefix(ans, "ok") {
					t.Fatalf("reload %d: %q %v", i+1, ans, err)
				}
			}
			// A crash: the respawned generation takes the sockets too.
			st := w.status()
			if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			testutil.WaitFor(t, 20*time.Second, "a respawned generation", func() bool {
				s := w.status()
				return s.Serving && s.Respawns == 1 && s.PID != st.PID
			})
			recs := readJSONLines[fakeSocks](t, socksLog)
			if len(recs) != 4 {
				t.Fatalf("%d ready generations logged, want 4 (start, 2 reloads, respawn): %+v", len(recs), recs)
			}
			want := uint32(0)
			if v.version == "2.2.0" {
				want = 0x0900
			}
			first := recs[0].Listener
			if first == 0 || len(recs[0].Received) != 0 {
				t.Fatalf("first generation: %+v, want a listener of its own and nothing received", recs[0])
			}
			for i, r := range recs[1:] {
				if r.Listener != first {
					t.Errorf("generation %d listens on inode %d, want the first one's %d", i+2, r.Listener, first)
				}
				found := false
				for _, k := range r.Received {
					if k.Ino == first {
						found = true
						if k.Opts != want {
							t.Errorf("generation %d got options %#x with the listener, want %#x as the first generation sent", i+2, k.Opts, want)
						}
					}
				}
				if !found {
					t.Errorf("generation %d received %+v, not the listener %d", i+2, r.Received, first)
				}
			}
			faultStop(t, w)
		})
	}
}
