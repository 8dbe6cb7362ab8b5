package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// Faults of the configuration (CONFIG): broken at the start and at a reload,
// odd paths, haproxy's own master-worker keyword. The fault helpers are in
// faults_test.go.

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

// TestFaultLinesBounded: with a 64 KiB CONFIG path every line the wrapper
// writes (its own, and haproxy's alert passed through) is at most
// logx.MaxLine bytes and says how many bytes were cut; the error still says
// what is wrong. Before lines were bounded, the wrapper wrote lines of
// 65,678 bytes here.
func TestFaultLinesBounded(t *testing.T) {
	bin := requireRealHAProxy(t)
	for _, args := range [][]string{nil, {"-D"}} { // the -D (Type=forking) parent reports the failure itself
		t.Run(fmt.Sprint(args), func(t *testing.T) { linesBounded(t, bin, args) })
	}
}
func linesBounded(t *testing.T, bin string, args []string) {
	dir := testutil.ShortDir(t)
	realConfig(t, dir, "expose-fd listeners")
	huge := filepath.Join(dir, strings.Repeat("z/", 32<<10)+"haproxy.cfg")
	w := startWrapper(t, dir, wrapperOpts{noWait: true, args: args, env: []string{"CONFIG=" + huge, "HAPROXY_BIN=" + bin}})
	if code := w.waitExit(30 * time.Second); code == 0 {
		t.Fatalf("exit code 0 with a configuration path of %d bytes:\n%.2000s", len(huge), w.out.String())
	}
	out := w.out.String()
	var cut, alerts int
	for _, l := range strings.SplitAfter(out, "\n") {
		if len(l) > logx.MaxLine {
			t.Errorf("a line of %d bytes (max %d): %.200q...", len(l), logx.MaxLine, l)
		}
		if strings.HasSuffix(l, " bytes cut]\n") {
			cut++
			if strings.HasPrefix(l, "<3>[ALERT]") {
				alerts++
			}
		}
	}
	if cut == 0 || alerts == 0 {
		t.Errorf("%d lines end with the bytes cut, %d of them haproxy's alerts: want both (the path is %d bytes)\n%.3000s", cut, alerts, len(huge), out)
	}
	if errs := faultLines(out, "<3>haproxy-systemd-wrapper: "); len(errs) == 0 || !strings.Contains(errs[0], "z/z/") || !strings.Contains(errs[0], "Cannot open configuration file") {
		// haproxy's own alert arrives without its end here ("File name
		// too long"): measured, its 65.8 KB line reaches the wrapper's
		// pipe cut near 64 KiB (a pipe's capacity), while it arrives whole
		// in a shell pipe read by grep. A line's end is kept when it
		// arrives (the PATH_MAX case above, logx's TestLinesAreBounded).
		t.Errorf("no error line of the wrapper's naming the path and haproxy's reason (Cannot open configuration file):\n%.3000s", out)
	}
	t.Logf("%d bytes of output in %d lines, %d cut (%d of haproxy's alerts)", len(out), strings.Count(out, "\n"), cut, alerts)
}
