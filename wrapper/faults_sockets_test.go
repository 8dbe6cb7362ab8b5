package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// Faults of the sockets the wrapper is given: HAPROXY_STATS_SOCKET,
// NOTIFY_SOCKET, a control socket path too long for a unix socket. The
// fault helpers are in faults_test.go.

func TestFaultStatsSocket(t *testing.T) {
	// HAPROXY_STATS_SOCKET is not needed for the hand-over any more: the
	// wrapper serves -x itself from the sockets it holds. A missing one, a
	// plain file, or a stats socket without "expose-fd listeners" costs
	// no failed attempt and no warning: the reload hands the listening
	// socket over all the same.
	cases := []struct {
		name       string
		statsExtra string
		socket     func(t *testing.T, dir string) string // HAPROXY_STATS_SOCKET
	}{
		{"missing", "expose-fd listeners", func(t *testing.T, dir string) string {
			return filepath.Join(dir, "nosuch.sock")
		}},
		{"regular file", "expose-fd listeners", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "plain.sock")
			if err := os.WriteFile(p, []byte("not a socket\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"without expose-fd", "", func(t *testing.T, dir string) string {
			return filepath.Join(dir, "admin.sock") // the config's, declared without expose-fd
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := testutil.ShortDir(t)
			sock := tc.socket(t, dir)
			w := startRealIn(t, dir, tc.statsExtra, false, wrapperOpts{env: []string{"HAPROXY_STATS_SOCKET=" + sock}})
			first := faultServed(t, w)
			before := listenInodes(t, first)
			second := faultReloadOK(t, w)
			if st := w.status(); st.LastReload == nil || !st.LastReload.OK {
				t.Fatalf("last reload %+v, want ok", st.LastReload)
			}
			argv := faultCmdline(second)
			if i := slices.Index(argv, "-x"); i < 0 || i+1 >= len(argv) || !strings.HasSuffix(argv[i+1], "/listeners.sock") || faultHasArg(argv, "-sf") {
				t.Fatalf("the serving generation runs %q: want -x with the wrapper's own listeners.sock, no -sf", argv)
			}
			if after := listenInodes(t, second); !slices.Equal(before, after) {
				t.Fatalf("listening sockets before the reload %v, after %v: want the same sockets handed over", before, after)
			}
			if lines := faultLines(w.out.String(), "HAPROXY_STATS_SOCKET"); len(lines) > 0 {
				t.Errorf("a line about HAPROXY_STATS_SOCKET: %q", lines)
			}
			if n := strings.Count(w.out.String(), "started haproxy generation"); n != 2 {
				t.Errorf("%d generations started for a start and one reload: a failed attempt?", n)
			}
			testutil.WaitFor(t, 15*time.Second, "the old generation to finish", func() bool { return !proc.Alive(first) })
			faultReloadOK(t, w)
			faultStop(t, w)
		})
	}
}

// listenInodes is the inodes, in order, of the TCP sockets pid listens on;
// the test fails when there is none.
func listenInodes(t *testing.T, pid int) []uint64 {
	t.Helper()
	out := testutil.ListenInodes(t, pid, "tcp", "tcp6")
	if len(out) == 0 {
		t.Fatalf("pid %d listens on no TCP socket", pid)
	}
	return out
}

func TestFaultNotifySocketNowhere(t *testing.T) {
	cases := []struct {
		name string
		addr func(t *testing.T, dir string) string
	}{
		{"nothing there", func(t *testing.T, dir string) string { return filepath.Join(dir, "nobody") }},
		{"regular file", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "notify-file")
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"abstract nobody listens on", func(t *testing.T, dir string) string {
			return fmt.Sprintf("@hsw-fault-nobody-%d-%d", os.Getpid(), time.Now().UnixNano())
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := testutil.ShortDir(t)
			addr := tc.addr(t, dir)
			w := startRealIn(t, dir, "expose-fd listeners", true, wrapperOpts{env: []string{"NOTIFY_SOCKET=" + addr}})
			faultServed(t, w)
			faultReloadOK(t, w)
			faultReloadOK(t, w)
			w.signal(syscall.SIGUSR2) // and a signal-driven one
			if st := w.waitReloads(3); st.LastReload == nil || !st.LastReload.OK {
				t.Fatalf("third reload: %+v", st.LastReload)
			}
			faultServed(t, w)
			faultStop(t, w)
			lines := faultLines(w.out.String(), "NOTIFY_SOCKET")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "<4>haproxy-systemd-wrapper: ") {
				t.Fatalf("%d log lines mention NOTIFY_SOCKET, want exactly one warning:\n%s", len(lines), strings.Join(lines, "\n"))
			}
			if tc.name == "regular file" {
				if fi, err := os.Lstat(addr); err != nil || !fi.Mode().IsRegular() {
					t.Fatalf("the regular file at NOTIFY_SOCKET was replaced or removed: %v", err)
				}
			}
		})
	}
}

func TestFaultLongControlSocketPath(t *testing.T) {
	f := newFake(t)
	long := filepath.Join(f.dir, strings.Repeat("s", 120)+".sock")
	w := startWrapper(t, f.dir, wrapperOpts{noWait: true, env: f.env("HAPROXY_WRAPPER_CONTROL_SOCKET=" + long)})
	if code := w.waitExit(10 * time.Second); code != proc.ExitUsage {
		t.Fatalf("exit code %d, want %d\n%s", code, proc.ExitUsage, w.out.String())
	}
	// One error line (the legacy "exit, haproxy RC=64" line may follow).
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(w.out.String()), "\n") {
		if !strings.Contains(l, "exit, haproxy RC=") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "<3>haproxy-systemd-wrapper: ") {
		t.Fatalf("want exactly one error line, got:\n%s", w.out.String())
	}
	if l := lines[0]; !strings.Contains(l, "HAPROXY_WRAPPER_CONTROL_SOCKET") || !strings.Contains(l, "107") || !strings.Contains(l, "shorter path") {
		t.Fatalf("error %q does not name the variable, the limit and the fix", l)
	}
	if st := f.starts(t); len(st) != 0 {
		t.Fatalf("haproxy was started: %+v", st)
	}
}
