package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// Private state (SPEC §6): the runtime folder is the wrapper's own, a
// control socket that is not the wrapper's is never believed, two instances
// never share anything by default.

const nobody = testutil.Nobody

// squatter serves a control socket at path the way a hostile local user
// would: it claims every reload succeeded.
func squatter(path string) int {
	return testutil.Squat(path, "ok generation 99 serving (pid 1)")
}

// asNobody returns a command running the test binary, copied where nobody
// can execute it, under name, as uid/gid 65534.
func asNobody(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	c := testutil.AsNobody(t, name, args...)
	c.SysProcAttr.Setpgid = true
	c.Env = proc.UnsetEnv(os.Environ(), "MAINPID")
	return c
}

func TestRuntimeDirRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown)")
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, rt string)
		want  string
	}{
		{"symlink to another folder", func(t *testing.T, rt string) {
			other := rt + ".other"
			os.Mkdir(other, 0o700)
			if err := os.Symlink(other, rt); err != nil {
				t.Fatal(err)
			}
		}, "is a symlink"},
		{"another user's", func(t *testing.T, rt string) {
			os.Mkdir(rt, 0o700)
			if err := os.Chown(rt, nobody, nobody); err != nil {
				t.Fatal(err)
			}
		}, "is owned by uid 65534"},
		{"writable by others", func(t *testing.T, rt string) {
			os.Mkdir(rt, 0o700)
			os.Chmod(rt, 0o777)
		}, "writable by group or others"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			rt := filepath.Join(f.dir, "rt")
			tc.setup(t, rt)
			// A planted generation configuration with a lua-load must never
			// be loaded: the wrapper refuses the folder before anything.
			os.WriteFile(filepath.Join(rt, "gen-1.cfg"), []byte("global\n    lua-load /nonexistent/evil.lua\n"), 0o666)
			w := startWrapper(t, f.dir, wrapperOpts{noWait: true, env: f.env("FAKE_VERSION=HAProxy version 2.6.0-fake")})
			if code := w.waitExit(20 * time.Second); code != proc.ExitUsage {
				t.Fatalf("exit code %d, want 64:\n%s", code, w.out.String())
			}
			if !strings.Contains(w.out.String(), "HAPROXY_WRAPPER_RUNTIME_DIR="+rt) || !strings.Contains(w.out.String(), tc.want) {
				t.Fatalf("no line naming HAPROXY_WRAPPER_RUNTIME_DIR and %q:\n%s", tc.want, w.out.String())
			}
			if n := len(f.starts(t)); n != 0 {
				t.Fatalf("%d haproxy started with a refused runtime folder", n)
			}
		})
	}
}

func TestSecondWrapperOnTheSameFolderRefused(t *testing.T) {
	f := newFake(t)
	first := startWrapper(t, f.dir, wrapperOpts{env: f.env("FAKE_VERSION=HAProxy version 2.6.0-fake")})
	dir2 := testutil.ShortDir(t)
	second := startWrapper(t, dir2, wrapperOpts{noWait: true, env: append(f.env("FAKE_VERSION=HAProxy version 2.6.0-fake"),
		"HAPROXY_WRAPPER_RUNTIME_DIR="+filepath.Join(f.dir, "rt"), "HAPROXY_WRAPPER_CONTROL_SOCKET="+filepath.Join(dir2, "ctl.sock"),
		"PIDFILE="+filepath.Join(dir2, "haproxy.pid"))})
	if code := second.waitExit(20 * time.Second); code != proc.ExitUsage {
		t.Fatalf("second wrapper on the same runtime folder: exit code %d, want 64:\n%s", code, second.out.String())
	}
	if want := fmt.Sprintf("in use by another running wrapper (pid %d)", first.pid()); !strings.Contains(second.out.String(), want) {
		t.Fatalf("the refusal does not name the first wrapper (%q):\n%s", want, second.out.String())
	}
	if st := first.status(); !st.Serving {
		t.Fatalf("the first wrapper stopped serving")
	}
}

func TestSquattedControlSocketRefused(t *testing.T) {
	shared := testutil.ShortDir(t)
	os.Chmod(shared, 0o1777) // like /tmp: anyone may create a socket here
	path := filepath.Join(shared, "ctl.sock")
	sq := asNobody(t, "squatter", path)
	out, _ := sq.StdoutPipe()
	if err := sq.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-sq.Process.Pid, syscall.SIGKILL); _ = sq.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "listening\n" {
		t.Fatalf("squatter: %q %v", line, err)
	}
	// The commands refuse the squatter's socket (reload exit 1, status 3).
	for _, tc := range []struct {
		cmd  string
		code int
	}{{"reload", 1}, {"status", 3}} {
		c := exec.Command(testutil.Self(t))
		c.Path = testutil.PlaceSelf(t, testutil.ShortDir(t), "haproxy-systemd-wrapper", false)
		c.Args = []string{c.Path, tc.cmd}
		c.Env = proc.SetEnv(proc.UnsetEnv(os.Environ(), "MAINPID"), "HAPROXY_WRAPPER_CONTROL_SOCKET", path)
		b, _ := c.CombinedOutput()
		if c.ProcessState.ExitCode() != tc.code || !strings.Contains(string(b), "belongs to uid 65534") || strings.Contains(string(b), "generation 99") {
			t.Fatalf("%s against a squatted socket: exit %d, output %q; want exit %d and a refusal", tc.cmd, c.ProcessState.ExitCode(), b, tc.code)
		}
	}
	// And a wrapper told to use that path does not serve there: it says who
	// holds it and exits 64.
	f := newFake(t)
	w := startWrapper(t, f.dir, wrapperOpts{noWait: true, env: append(f.env("FAKE_VERSION=HAProxy version 2.6.0-fake"), "HAPROXY_WRAPPER_CONTROL_SOCKET="+path)})
	if code := w.waitExit(20 * time.Second); code != proc.ExitUsage || !strings.Contains(w.out.String(), "uid 65534") {
		t.Fatalf("wrapper on a squatted control socket: exit %d:\n%s", code, w.out.String())
	}
}

func TestUnprivilegedUserCannotReloadOrReadStatus(t *testing.T) {
	f := newFake(t)
	w := startWrapper(t, f.dir, wrapperOpts{env: f.env("FAKE_VERSION=HAProxy version 2.6.0-fake")})
	os.Chmod(f.dir, 0o755) // nobody may reach the socket file; its mode (0600) must stop it
	for _, tc := range []struct {
		cmd  string
		code int
	}{{"reload", 1}, {"status", 3}} {
		c := asNobody(t, "haproxy-systemd-wrapper", tc.cmd)
		c.Env = proc.SetEnv(c.Env, "HAPROXY_WRAPPER_CONTROL_SOCKET", w.ctlPath)
		b, _ := c.CombinedOutput()
		if c.ProcessState.ExitCode() != tc.code || !strings.Contains(string(b), "permission denied") {
			t.Fatalf("%s as uid %d: exit %d, output %q; want exit %d, permission denied", tc.cmd, nobody, c.ProcessState.ExitCode(), b, tc.code)
		}
	}
	if st := w.status(); st.Reloads != 0 {
		t.Fatalf("an unprivileged user reloaded the wrapper")
	}
}
