package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// Bad input and faults (SPEC §5): every case asserts the outcome (exit code,
// the one error line naming the thing and the fix, or that the old haproxy
// keeps serving), not only that nothing crashed.
//
// Already covered elsewhere, so not repeated here:
//   - syntax error in the configuration at reload, reload command answer,
//     old pid serving, next good reload: TestRealBrokenConfigReloadKeepsServing
//   - garbage and foreign pids in haproxy 1.7's own pid file (legacy -Ds
//     mode, where the wrapper reads it): TestLegacyPidFileGarbageAndForeignPidsNeverSignalled
//   - writePIDFile on a symlink and in a missing folder, as a unit:
//     TestWritePIDFileAtomicAndReplacesSymlink (end to end here)
//   - the notifier warning once, as a unit: TestNotifyNowhereWarnsOnce
//     (end to end, across re-exec, here)
//   - long HAPROXY_WRAPPER_CONTROL_SOCKET, as a unit: TestSettingsValidation
//     (end to end, exit code, here)
//   - missing/non-executable haproxy binary, empty CONFIG, odd -v output,
//     hang at start bounded by the start timeout, crash after start, haproxy
//     -c failing with the fake: TestStartFailures, TestHAProxyHangsAtStartIsBounded,
//     TestHAProxyCrashAfterStart
//   - SIGTERM during a reload, binary deleted between reloads: storm_test.go

// faultServed returns the pid serving HTTP, failing the test if none does.
func faultServed(t *testing.T, w *wrapperProc) int {
	t.Helper()
	pid, err := servedBy(w.addr)
	if err != nil {
		t.Fatalf("haproxy does not serve %s: %v\n%s", w.addr, err, w.out.String())
	}
	return pid
}

// faultReload asks for a synchronous reload and returns the answer line.
func faultReload(t *testing.T, w *wrapperProc) string {
	t.Helper()
	ans, err := control.RequestText(w.ctlPath, "reload", 40*time.Second)
	if err != nil {
		t.Fatalf("reload command: %q, %v\n%s", ans, err, w.out.String())
	}
	return strings.TrimSpace(ans)
}

// faultReloadOK reloads, requires "ok", and requires a new pid to serve.
func faultReloadOK(t *testing.T, w *wrapperProc) int {
	t.Helper()
	before := faultServed(t, w)
	if ans := faultReload(t, w); !strings.HasPrefix(ans, "ok generation") {
		t.Fatalf("reload answered %q, want ok\n%s", ans, w.out.String())
	}
	after := faultServed(t, w)
	if after == before {
		t.Fatalf("after a successful reload still served by pid %d", before)
	}
	if st := w.status(); !st.Serving || st.PID != after {
		t.Fatalf("status after reload: serving %v pid %d, HTTP served by %d", st.Serving, st.PID, after)
	}
	return after
}

// faultStop sends SIGTERM and requires exit code 0.
func faultStop(t *testing.T, w *wrapperProc) {
	t.Helper()
	w.signal(syscall.SIGTERM)
	if code := w.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0\n%s", code, w.out.String())
	}
}

// faultLines returns the wrapper log lines that contain every substring.
func faultLines(out string, substrs ...string) []string {
	var got []string
next:
	for _, l := range strings.Split(out, "\n") {
		for _, s := range substrs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		got = append(got, l)
	}
	return got
}

// faultWantLine fails unless one log line holds every substring. It polls a
// moment: the wrapper's stderr reaches the buffer through a pipe, possibly
// after an answer on the control socket.
func faultWantLine(t *testing.T, w *wrapperProc, substrs ...string) string {
	t.Helper()
	var ls []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		exited := w.exited() // then the output is complete
		if ls = faultLines(w.out.String(), substrs...); len(ls) > 0 || exited || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(ls) == 0 {
		t.Fatalf("no log line with all of %q:\n%s", substrs, w.out.String())
	}
	return ls[0]
}

// faultCmdline is a process's argv.
func faultCmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

func faultHasArg(argv []string, arg string) bool {
	for _, a := range argv {
		if a == arg {
			return true
		}
	}
	return false
}

// faultNoProcessWith fails if a live process has needle in its command line.
func faultNoProcessWith(t *testing.T, needle string) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "no process running "+needle, func() bool {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid := atoiOr0(e.Name())
			if pid == 0 || pid == os.Getpid() {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err == nil && strings.Contains(string(b), needle) && proc.Alive(pid) {
				return false
			}
		}
		return true
	})
}

// faultPIDFileHolds requires path to be a regular file holding exactly pid.
func faultPIDFileHolds(t *testing.T, path string, pid int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("pid file %s: %v, mode %v: want a regular file", path, err, fi)
	}
	b, _ := os.ReadFile(path)
	if string(b) != itoa(pid)+"\n" {
		t.Fatalf("pid file %s holds %q, want %q", path, b, itoa(pid)+"\n")
	}
}

// --- pid file -------------------------------------------------------------

func TestFaultPIDFileFolderUnusable(t *testing.T) {
	cases := []struct {
		name string
		path func(t *testing.T, dir string) string
	}{
		{"missing folder", func(t *testing.T, dir string) string { return filepath.Join(dir, "missing", "haproxy.pid") }},
		{"folder is a file", func(t *testing.T, dir string) string {
			f := filepath.Join(dir, "file")
			if err := os.WriteFile(f, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(f, "haproxy.pid")
		}},
		{"unwritable folder", func(t *testing.T, dir string) string {
			ro := filepath.Join(dir, "ro")
			if err := os.Mkdir(ro, 0o555); err != nil {
				t.Fatal(err)
			}
			if f, err := os.CreateTemp(ro, "probe"); err == nil {
				// root ignores the mode bits; sysfs refuses new files even
				// to root (EACCES, or EROFS when mounted read-only).
				f.Close()
				os.Remove(f.Name())
				ro = "/sys"
				if f, err := os.CreateTemp(ro, "probe"); err == nil {
					f.Close()
					os.Remove(f.Name())
					t.Skip("no folder is unwritable for this user (root, and /sys accepts new files)")
				}
			}
			return filepath.Join(ro, fmt.Sprintf("hsw-fault-%d.pid", os.Getpid()))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := testutil.ShortDir(t)
			pidfile := tc.path(t, dir)
			w := startRealIn(t, dir, "expose-fd listeners", true, wrapperOpts{env: []string{"PIDFILE=" + pidfile}})
			first := faultServed(t, w)
			line := faultWantLine(t, w, "write pid file "+pidfile)
			t.Logf("warning: %s", line)
			if !strings.HasPrefix(line, "<4>haproxy-systemd-wrapper: ") || !strings.Contains(line, "haproxy serves") {
				t.Fatalf("pid file failure line %q: want a warning saying haproxy serves", line)
			}
			if st := w.status(); !st.Serving || st.PID != first {
				t.Fatalf("status: serving %v pid %d, want pid %d", st.Serving, st.PID, first)
			}
			faultReloadOK(t, w)
			faultStop(t, w)
			if _, err := os.Lstat(pidfile); err == nil {
				t.Fatalf("a pid file appeared at %s", pidfile)
			}
		})
	}
}

func TestFaultPIDFileSymlink(t *testing.T) {
	for _, dangling := range []bool{false, true} {
		name := "to another file"
		if dangling {
			name = "dangling"
		}
		t.Run(name, func(t *testing.T) {
			dir := testutil.ShortDir(t)
			victim := filepath.Join(dir, "victim")
			if !dangling {
				if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			pidfile := filepath.Join(dir, "haproxy.pid")
			if err := os.Symlink(victim, pidfile); err != nil {
				t.Fatal(err)
			}
			checkVictim := func() {
				t.Helper()
				b, err := os.ReadFile(victim)
				switch {
				case dangling && !os.IsNotExist(err):
					t.Fatalf("the dangling symlink's target %s was created: %q %v", victim, b, err)
				case !dangling && string(b) != "precious\n":
					t.Fatalf("the symlink's target was written: %q %v", b, err)
				}
			}
			w := startRealIn(t, dir, "expose-fd listeners", true, wrapperOpts{})
			faultPIDFileHolds(t, pidfile, faultServed(t, w))
			checkVictim()
			// The symlink again before a reload.
			os.Remove(pidfile)
			if err := os.Symlink(victim, pidfile); err != nil {
				t.Fatal(err)
			}
			faultPIDFileHolds(t, pidfile, faultReloadOK(t, w))
			checkVictim()
			faultStop(t, w)
			checkVictim()
		})
	}
}

func TestFaultPIDFileForeignContent(t *testing.T) {
	cases := []struct {
		name    string
		content func(sleeper int) string
	}{
		{"garbage", func(int) string { return "garbage\n-3\n0\n99999999999\n$(rm -rf /)\n\x00\xff\n" }},
		{"foreign pid", func(sleeper int) string { return itoa(sleeper) + "\n" }},
		{"foreign pid and garbage", func(sleeper int) string { return "x " + itoa(sleeper) + " 1 y\n" }},
		{"empty", func(int) string { return "" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := testutil.ShortDir(t)
			sleeper := startSleeper(t)
			pidfile := filepath.Join(dir, "haproxy.pid")
			if err := os.WriteFile(pidfile, []byte(tc.content(sleeper)), 0o644); err != nil {
				t.Fatal(err)
			}
			w := startRealIn(t, dir, "expose-fd listeners", true, wrapperOpts{})
			first := faultServed(t, w)
			faultPIDFileHolds(t, pidfile, first)
			if argv := faultCmdline(first); faultHasArg(argv, "-sf") || faultHasArg(argv, itoa(sleeper)) {
				t.Fatalf("first generation's argv %q names old pids", argv)
			}
			// The same content again before a reload.
			if err := os.WriteFile(pidfile, []byte(tc.content(sleeper)), 0o644); err != nil {
				t.Fatal(err)
			}
			second := faultReloadOK(t, w)
			faultPIDFileHolds(t, pidfile, second)
			// haproxy >= 1.8 gets no -sf: the wrapper soft-stops its own
			// old generation once the new one serves, and nothing else.
			if argv := faultCmdline(second); faultHasArg(argv, "-sf") || faultHasArg(argv, itoa(sleeper)) {
				t.Fatalf("reload's argv %q names old pids", argv)
			}
			testutil.WaitFor(t, 15*time.Second, "the old generation to finish", func() bool { return !proc.Alive(first) })
			if !proc.Alive(sleeper) {
				t.Fatalf("the foreign process %d was killed during the reload", sleeper)
			}
			if err := os.WriteFile(pidfile, []byte(tc.content(sleeper)), 0o644); err != nil {
				t.Fatal(err)
			}
			faultStop(t, w)
			if !proc.Alive(sleeper) {
				t.Fatalf("the foreign process %d named in the pid file was killed by the stop", sleeper)
			}
			if proc.Alive(second) {
				t.Fatalf("haproxy %d still alive after the stop", second)
			}
		})
	}
}

// --- configuration --------------------------------------------------------

func TestFaultConfigAtStart(t *testing.T) {
	bin := requireRealHAProxy(t)
	cases := []struct {
		name  string
		setup func(t *testing.T, dir, cfg, addr string) (config string)
		code  int
		want  [][]string // log lines that must exist, each with all of its substrings (ADDR: the frontend address)
	}{
		{"missing file", func(t *testing.T, dir, cfg, addr string) string {
			return filepath.Join(dir, "nope.cfg")
		}, 1, [][]string{{"<3>haproxy-systemd-wrapper: ", "exited during start: exit code 1", "nope.cfg", "No such file or directory"}}},
		{"unreadable file", func(t *testing.T, dir, cfg, addr string) string {
			if err := os.Chmod(cfg, 0); err != nil {
				t.Fatal(err)
			}
			if f, err := os.Open(cfg); err == nil {
				f.Close()
				t.Skip("running as root: chmod 000 does not make the file unreadable (CAP_DAC_OVERRIDE)")
			}
			return cfg
		}, 1, [][]string{{"<3>haproxy-systemd-wrapper: ", "exited during start: exit code 1", "haproxy.cfg", "Permission denied"}}},
		{"syntax error", func(t *testing.T, dir, cfg, addr string) string {
			f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("    no-such-keyword\n")
			f.Close()
			return cfg
		}, 1, [][]string{{"<3>haproxy-systemd-wrapper: ", "exited during start: exit code 1", "no-such-keyword"}}},
		{"port already in use", func(t *testing.T, dir, cfg, addr string) string {
			// A plain listener (no SO_REUSEPORT): haproxy's SO_REUSEPORT bind fails.
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			return cfg
		}, 1, [][]string{
			{"[ALERT]", "cannot bind socket (Address already in use)", "ADDR"},
			{"<3>haproxy-systemd-wrapper: haproxy did not start: ", "exited during start: exit code 1"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := testutil.ShortDir(t)
			cfg, addr, _ := realConfig(t, dir, "expose-fd listeners")
			config := tc.setup(t, dir, cfg, addr)
			w := startWrapper(t, dir, wrapperOpts{noWait: true, env: []string{"CONFIG=" + config, "HAPROXY_BIN=" + bin}})
			if code := w.waitExit(30 * time.Second); code != tc.code {
				t.Fatalf("exit code %d, want %d\n%s", code, tc.code, w.out.String())
			}
			for _, want := range tc.want {
				subs := append([]string(nil), want...)
				for i := range subs {
					subs[i] = strings.ReplaceAll(subs[i], "ADDR", addr)
				}
				faultWantLine(t, w, subs...)
			}
			if n := len(faultLines(w.out.String(), "<3>haproxy-systemd-wrapper: ")); n != 1 {
				t.Errorf("%d error lines from the wrapper, want exactly one:\n%s", n, w.out.String())
			}
			if ls := strings.Split(strings.TrimSpace(w.out.String()), "\n"); ls[len(ls)-1] != "<5>haproxy-systemd-wrapper: exit, haproxy RC="+itoa(tc.code) {
				t.Errorf("the last log line is %q, want the legacy \"<5>haproxy-systemd-wrapper: exit, haproxy RC=%d\" (README)", ls[len(ls)-1], tc.code)
			}
			faultNoProcessWith(t, config)
			if _, err := os.Lstat(filepath.Join(dir, "haproxy.pid")); err == nil {
				t.Errorf("a pid file was written although haproxy never served")
			}
		})
	}
}

func TestFaultConfigAtReload(t *testing.T) {
	cases := []struct {
		name string
		// breakIt breaks the configuration and returns the substrings the
		// reload's error answer must hold (any one of each group).
		breakIt func(t *testing.T, w *wrapperProc, cfg string) [][]string
	}{
		{"missing file", func(t *testing.T, w *wrapperProc, cfg string) [][]string {
			if err := os.Rename(cfg, cfg+".away"); err != nil {
				t.Fatal(err)
			}
			return [][]string{{"exited during start: exit code 1"}, {cfg}, {"No such file or directory"}}
		}},
		{"unreadable file", func(t *testing.T, w *wrapperProc, cfg string) [][]string {
			if err := os.Chmod(cfg, 0); err != nil {
				t.Fatal(err)
			}
			if f, err := os.Open(cfg); err == nil {
				f.Close()
				t.Skip("running as root: chmod 000 does not make the file unreadable (CAP_DAC_OVERRIDE)")
			}
			return [][]string{{"exited during start: exit code 1"}, {"Permission denied"}}
		}},
		{"port already in use", func(t *testing.T, w *wrapperProc, cfg string) [][]string {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			held := ln.Addr().String()
			f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(f, "frontend extra\n    bind %s\n    http-request return status 200\n", held)
			f.Close()
			return [][]string{{held, "cannot bind", "Address already in use"}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, cfg, good := startRealConfig(t)
			dir := w.dir
			before := faultServed(t, w)
			wants := tc.breakIt(t, w, cfg)
			ans := faultReload(t, w)
			if !strings.HasPrefix(ans, "error ") {
				t.Fatalf("reload with a broken configuration answered %q, want \"error ...\"\n%s", ans, w.out.String())
			}
			for _, group := range wants {
				ok := false
				for _, s := range group {
					ok = ok || strings.Contains(ans, s)
				}
				if !ok {
					t.Errorf("reload answer %q does not name the reason (want one of %q)", ans, group)
				}
			}
			faultWantLine(t, w, "<3>haproxy-systemd-wrapper: reload failed, generation 1 (pid ", ") keeps serving: ")
			if got := faultServed(t, w); got != before {
				t.Fatalf("after the failed reload served by %d, want the old pid %d", got, before)
			}
			if st := w.status(); !st.Serving || st.PID != before || st.LastReload == nil || st.LastReload.OK {
				t.Fatalf("status after the failed reload: serving %v pid %d last %+v; want pid %d and a failed reload", st.Serving, st.PID, st.LastReload, before)
			}
			var live []int
			testutil.WaitFor(t, 10*time.Second, "only the serving haproxy left", func() bool {
				live, _ = w.children()
				return len(live) == 1 && live[0] == before
			})
			// The old haproxy keeps its admin socket (HAPROXY_STATS_SOCKET) too:
			// status, and the next reload's -x handover, go through it.
			stats := filepath.Join(dir, "admin.sock")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			info, err := haproxy.ShowInfo(ctx, stats)
			cancel()
			if err != nil || info.Pid != before {
				t.Errorf("after the failed reload HAPROXY_STATS_SOCKET %s answers pid %d (%v), want the old pid %d", stats, info.Pid, err, before)
			}
			// Repair: the next reload works, with socket handover.
			os.Remove(cfg)
			if err := os.WriteFile(cfg, good, 0o644); err != nil {
				t.Fatal(err)
			}
			mark := len(w.out.String())
			third := faultReloadOK(t, w)
			if argv := faultCmdline(third); !faultHasArg(argv, "-x") {
				t.Errorf("the reload after the repair ran without -x socket handover: %q\n%s", argv, w.out.String()[mark:])
			}
			faultStop(t, w)
		})
	}
}

// --- stats socket ---------------------------------------------------------

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

// listenInodes lists the inodes of the TCP sockets pid listens on, sorted.
func listenInodes(t *testing.T, pid int) []string {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	mine := map[string]bool{}
	for _, e := range ents {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if ino, ok := strings.CutPrefix(l, "socket:["); ok {
			mine[strings.TrimSuffix(ino, "]")] = true
		}
	}
	var out []string
	for _, table := range []string{"tcp", "tcp6"} {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 9 && f[3] == "0A" && mine[f[9]] {
				out = append(out, f[9])
			}
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		t.Fatalf("pid %d listens on no TCP socket", pid)
	}
	return out
}

// --- NOTIFY_SOCKET --------------------------------------------------------

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

// --- odd environment values -----------------------------------------------

// faultMoveConfig writes the test config to path (its folders created).
func faultMoveConfig(t *testing.T, cfg, path string) {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFaultOddConfigPaths(t *testing.T) {
	bin := requireRealHAProxy(t)
	t.Run("spaces quotes newline", func(t *testing.T) {
		dir := testutil.ShortDir(t)
		cfg, addr, stats := realConfig(t, dir, "expose-fd listeners")
		odd := filepath.Join(dir, "a b\"c'd\ne$f`g\\h")
		oddCfg := filepath.Join(odd, "haproxy cfg 'x'.cfg")
		faultMoveConfig(t, cfg, oddCfg)
		pidfile := filepath.Join(odd, "pid \"file\"")
		w := startWrapper(t, dir, wrapperOpts{env: []string{"CONFIG=" + oddCfg, "PIDFILE=" + pidfile, "HAPROXY_BIN=" + bin, "HAPROXY_STATS_SOCKET=" + stats}})
		w.addr = addr
		first := faultServed(t, w)
		faultPIDFileHolds(t, pidfile, first)
		if argv := faultCmdline(first); !faultHasArg(argv, oddCfg) {
			t.Fatalf("haproxy's argv %q lacks the configuration path as one argument", argv)
		}
		second := faultReloadOK(t, w)
		faultPIDFileHolds(t, pidfile, second)
		if argv := faultCmdline(second); !faultHasArg(argv, oddCfg) {
			t.Fatalf("after re-exec haproxy's argv %q lacks the configuration path", argv)
		}
		for _, l := range strings.Split(strings.TrimSpace(w.out.String()), "\n") {
			if !strings.HasPrefix(l, "<") && !strings.HasPrefix(l, "[") {
				t.Errorf("a log line does not start with a priority (a newline of the path split an event?): %q", l)
			}
		}
		faultStop(t, w)
	})
	t.Run("4 KiB path", func(t *testing.T) {
		dir := testutil.ShortDir(t)
		cfg, addr, stats := realConfig(t, dir, "expose-fd listeners")
		long := dir
		for len(long) < 3800 {
			long = filepath.Join(long, strings.Repeat("d", 200))
		}
		longCfg := filepath.Join(long, strings.Repeat("c", 4060-len(long)-1)+".cfg")
		if len(longCfg) < 4000 || len(longCfg) >= 4096 {
			t.Fatalf("path length %d", len(longCfg))
		}
		faultMoveConfig(t, cfg, longCfg)
		w := startWrapper(t, dir, wrapperOpts{env: []string{"CONFIG=" + longCfg, "HAPROXY_BIN=" + bin, "HAPROXY_STATS_SOCKET=" + stats}})
		w.addr = addr
		faultServed(t, w)
		faultReloadOK(t, w)
		faultStop(t, w)
	})
	t.Run("path longer than PATH_MAX", func(t *testing.T) {
		dir := testutil.ShortDir(t)
		realConfig(t, dir, "expose-fd listeners")
		tooLong := filepath.Join(dir, strings.Repeat("x", 200), strings.Repeat("y/", 2100)+"haproxy.cfg")
		w := startWrapper(t, dir, wrapperOpts{noWait: true, env: []string{"CONFIG=" + tooLong, "HAPROXY_BIN=" + bin}})
		if code := w.waitExit(30 * time.Second); code != 1 && code != proc.ExitUsage {
			t.Fatalf("exit code %d, want 1 (haproxy -c failed) or 64\n%s", code, w.out.String())
		}
		errs := faultLines(w.out.String(), "<3>haproxy-systemd-wrapper: ")
		if len(errs) != 1 {
			t.Fatalf("%d error lines, want one:\n%s", len(errs), w.out.String())
		}
		if !strings.Contains(errs[0], "CONFIG") && !strings.Contains(errs[0], "File name too long") {
			t.Errorf("the error line does not say what is wrong (want CONFIG or \"File name too long\" in it): %q", errs[0])
		}
	})
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

// --- SIGTERM while haproxy starts -------------------------------------------

func TestFaultSIGTERMWhileStarting(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			f := newFake(t)
			w := startWrapper(t, f.dir, wrapperOpts{noWait: true, env: f.env("FAKE_VERSION=HAProxy version 2.6.12-1+deb12u4 2023/12/17 - https://haproxy.org/", "FAKE_MODE=hang", "HAPROXY_WRAPPER_START_TIMEOUT=60s")})
			var st []fakeStart
			testutil.WaitFor(t, 20*time.Second, "haproxy to be started", func() bool {
				st = f.starts(t)
				return len(st) == 1 || w.exited()
			})
			if len(st) != 1 {
				t.Fatalf("haproxy not started:\n%s", w.out.String())
			}
			hp := st[0].Pid
			if !proc.Alive(hp) {
				t.Fatalf("the hanging haproxy %d is not running", hp)
			}
			t0 := time.Now()
			w.signal(sig)
			code := w.waitExit(5 * time.Second)
			t.Logf("exit %d after %s", code, time.Since(t0).Round(time.Millisecond))
			if code != 0 {
				t.Errorf("exit code %d after a requested stop during start, want 0 (README: haproxy ended by the very signal forwarded)\n%s", code, w.out.String())
			}
			testutil.WaitFor(t, 5*time.Second, "the starting haproxy to be gone", func() bool { return !proc.Alive(hp) })
			faultNoProcessWith(t, filepath.Join(f.dir, "fake.cfg"))
			faultWantLine(t, w, "stopping ("+unix.SignalName(sig)+" received)")
			faultWantLine(t, w, "exit, haproxy RC=")
		})
	}
}

func TestFaultMasterWorkerKeywordInConfig(t *testing.T) {
	bin := requireRealHAProxy(t)
	dir := testutil.ShortDir(t)
	cfg, _, _ := realConfig(t, dir, "")
	b, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), "global\n", "global\n    master-worker\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	w := startWrapper(t, dir, wrapperOpts{noWait: true, env: []string{"CONFIG=" + cfg, "HAPROXY_BIN=" + bin}})
	if code := w.waitExit(30 * time.Second); code != proc.ExitStartFailed {
		t.Fatalf("exit code %d, want %d", code, proc.ExitStartFailed)
	}
	if !strings.Contains(w.out.String(), "remove 'master-worker' from the global section") {
		t.Fatalf("no clear message about master-worker:\n%s", w.out.String())
	}
	assertNoHAProxyFrom(t, w)
}

// TestFaultStderrClosed: journald restarting (or a closed terminal) breaks
// the wrapper's stderr; the wrapper must go on serving, reloading, stopping.
func TestFaultStderrClosed(t *testing.T) {
	bin := requireRealHAProxy(t)
	dir := testutil.ShortDir(t)
	cfg, addr, stats := realConfig(t, dir, "expose-fd listeners")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w := startWrapper(t, dir, wrapperOpts{env: []string{"CONFIG=" + cfg, "HAPROXY_BIN=" + bin, "HAPROXY_STATS_SOCKET=" + stats},
		stdout: pw, stderr: pw, noWait: true})
	pw.Close()
	var seen strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(seen.String(), "serving") {
		n, err := pr.Read(buf)
		if err != nil {
			t.Fatalf("wrapper output ended before serving: %v\n%s", err, seen.String())
		}
		seen.Write(buf[:n])
	}
	pr.Close() // from now on every write to stderr fails with EPIPE
	ctl := filepath.Join(dir, "ctl.sock")
	for i := 0; i < 3; i++ {
		if ans, err := control.RequestText(ctl, "reload", 30*time.Second); err != nil || !strings.HasPrefix(ans, "ok") {
			t.Fatalf("reload %d with stderr closed: %q %v", i, ans, err)
		}
	}
	if _, err := servedBy(addr); err != nil {
		t.Fatalf("not serving with stderr closed: %v", err)
	}
	w.signal(syscall.SIGTERM)
	select {
	case <-w.p.Done():
		if code := w.p.Code(); code != 0 {
			t.Fatalf("wrapper exit after SIGTERM with stderr closed: code %d (want exit 0, not SIGPIPE)", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("wrapper did not exit after SIGTERM")
	}
}
