package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// Faults of the pid file (PIDFILE): an unusable folder, a symlink, someone
// else's content. The fault helpers and the index of what is covered
// elsewhere are in faults_test.go.

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
