package commands

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/settings"
	"haproxy-systemd-wrapper/wrapper/internal/status"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

func TestCommandsRefuseUnknownArguments(t *testing.T) {
	for _, args := range [][]string{
		{"bogus"},
		{"reload", "--now"},
		{"reload", "extra"},
		{"reload", "--unit"},
		{"reload", "--unit", "a/b"},
		{"reload", "--unit", ".."},
		{"reload", "--unit=x", "--unit", "y"},
		{"status", "--bogus"},
		{"status", "--prometheus", "--json"},
		{"status", "--Prometheus"},
		{"status", "--json", "extra"},
		{"status", "--unit", "haproxy", "--json", "--json"},
		{"last-reload", "--now"},
		{"last-reload", "--unit", "with space"},
		{"version", "x"},
		{"help", "x"},
		{"--help", "x"},
	} {
		if got := Run(args, "test"); got != proc.ExitUsage {
			t.Errorf("Run(%q) = %d, want 64 (usage)", args, got)
		}
	}
}

func TestParseFlags(t *testing.T) {
	for _, tt := range []struct {
		cmd  string
		args []string
		want options
	}{
		{"status", nil, options{}},
		{"status", []string{"--unit", "haproxy@edge", "--json"}, options{unit: "haproxy@edge", format: "--json"}},
		{"status", []string{"--prometheus", "--unit=haproxy.service"}, options{unit: "haproxy", format: "--prometheus"}},
		{"reload", []string{"--unit", `haproxy@a\x2db`}, options{unit: `haproxy@a\x2db`}},
	} {
		got, err := parseFlags(tt.cmd, tt.args)
		if err != nil || got != tt.want {
			t.Errorf("parseFlags(%s, %q) = %+v, %v; want %+v", tt.cmd, tt.args, got, err, tt.want)
		}
	}
}

// TestLocate: --unit names a folder under the base, any of the explicit
// variables names one socket (as settings.Load computes it), nothing at
// all means every wrapper found.
func TestLocate(t *testing.T) {
	load := func() (settings.Settings, error) { return settings.Settings{ControlSocket: "/from/settings.sock"}, nil }
	env := func(kv ...string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1], true
				}
			}
			return "", false
		}
	}
	for _, tt := range []struct {
		what string
		unit string
		env  func(string) (string, bool)
		want where
	}{
		{"--unit", "haproxy@edge", env("CONFIG", "/x.cfg"), where{socket: "/b/haproxy@edge/control.sock", unit: "haproxy@edge", base: "/b"}},
		{"nothing set", "", env(), where{base: "/b"}},
		{"ExecReload=", "", env("RUNTIME_DIRECTORY", "/run/haproxy-systemd-wrapper/haproxy"), where{socket: "/from/settings.sock", base: "/b"}},
		{"CONFIG", "", env("CONFIG", "/etc/haproxy/haproxy.cfg"), where{socket: "/from/settings.sock", base: "/b"}},
		{"control socket", "", env("HAPROXY_WRAPPER_CONTROL_SOCKET", "/c.sock"), where{socket: "/from/settings.sock", base: "/b"}},
		{"runtime folder", "", env("HAPROXY_WRAPPER_RUNTIME_DIR", "/r"), where{socket: "/from/settings.sock", base: "/b"}},
	} {
		got, err := locate(tt.unit, "/b", tt.env, load)
		if err != nil || got != tt.want {
			t.Errorf("%s: locate = %+v, %v; want %+v", tt.what, got, err, tt.want)
		}
	}
	bad := func() (settings.Settings, error) { return settings.Settings{}, errors.New("CONFIG is set but empty") }
	if _, err := locate("", "/b", env("CONFIG", ""), bad); err == nil {
		t.Errorf("locate with a bad environment: no error")
	}
}

// fakeWrapper serves a control socket like the supervisor: status answers
// with report, reload calls onReload and answers with its result.
func fakeWrapper(t *testing.T, path string, report status.Report, onReload func() (bool, string)) {
	t.Helper()
	srv, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case r := <-srv.Requests():
				if r.Kind == control.Status {
					r.Snapshot <- report
					continue
				}
				ok, msg := true, "generation 2 serving"
				if onReload != nil {
					ok, msg = onReload()
				}
				r.Answer(ok, msg)
			}
		}
	}()
	t.Cleanup(func() { close(done); srv.Close() })
}

func mkdir(t *testing.T, p string, mode os.FileMode) string {
	t.Helper()
	if err := os.Mkdir(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDiscover: the wrappers that answer under the base are found by their
// folder's name; a folder with no socket, a socket nobody answers on, a
// symlink and a folder others may write are not, the last with a note; a
// base others may write is refused.
func TestDiscover(t *testing.T) {
	base := testutil.ShortDir(t) // mode 0700, like /run/haproxy-systemd-wrapper
	for _, n := range []string{"haproxy@beta", "haproxy@alpha"} {
		fakeWrapper(t, filepath.Join(mkdir(t, filepath.Join(base, n), 0o700), ControlSocketName), status.Report{Serving: true}, nil)
	}
	mkdir(t, filepath.Join(base, "stopped"), 0o700)
	stale := filepath.Join(mkdir(t, filepath.Join(base, "killed"), 0o700), ControlSocketName)
	testutil.StaleSocket(t, stale)
	open := mkdir(t, filepath.Join(base, "open"), 0o777)
	fakeWrapper(t, filepath.Join(open, ControlSocketName), status.Report{Serving: true}, nil)
	if err := os.Symlink(filepath.Join(base, "haproxy@alpha"), filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}

	fs, notes, err := discover(base)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, f.name)
		if f.pid != os.Getpid() || f.socket != filepath.Join(base, f.name, ControlSocketName) {
			t.Errorf("%s: pid %d socket %s", f.name, f.pid, f.socket)
		}
	}
	if want := []string{"haproxy@alpha", "haproxy@beta"}; !reflect.DeepEqual(got, want) {
		t.Errorf("found %q, want %q (notes %q)", got, want, notes)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "open") || !strings.Contains(notes[0], "writable by group or others") {
		t.Errorf("notes %q, want one about the folder others may write", notes)
	}

	// Two found and none named: the commands that act on one refuse (64).
	if _, code, ok := (where{base: base}).one("reload", 1); ok || code != proc.ExitUsage {
		t.Errorf("one() with two wrappers: ok %v code %d, want 64", ok, code)
	}
	if _, code, ok := (where{base: t.TempDir()}).one("reload", 1); ok || code != 1 {
		t.Errorf("one() with none: ok %v code %d, want 1", ok, code)
	}
	os.RemoveAll(filepath.Join(base, "haproxy@beta"))
	if sock, _, ok := (where{base: base}).one("reload", 1); !ok || sock != filepath.Join(base, "haproxy@alpha", ControlSocketName) {
		t.Errorf("one() with one wrapper: %q %v", sock, ok)
	}

	if err := os.Chmod(base, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, _, err := discover(base); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("discover in a folder others may write: %v", err)
	}
}

// captureStdout runs fn with os.Stdout going to a pipe and returns what it
// printed.
func captureStdout(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	out := make(chan string)
	go func() { b, _ := io.ReadAll(r); out <- string(b) }()
	defer func() { os.Stdout = old }()
	fn()
	w.Close()
	return testutil.Recv(t, out, 10*time.Second, "captured output")
}

// TestStatusListsEveryWrapper: a bare status prints each wrapper's status
// under its name and exits 3 when one of them does not serve.
func TestStatusListsEveryWrapper(t *testing.T) {
	base := testutil.ShortDir(t)
	fakeWrapper(t, filepath.Join(mkdir(t, filepath.Join(base, "haproxy@alpha"), 0o700), ControlSocketName), status.Report{Serving: true, PID: 11, Generation: 1, HAProxyVersion: "2.6"}, nil)
	fakeWrapper(t, filepath.Join(mkdir(t, filepath.Join(base, "haproxy@beta"), 0o700), ControlSocketName), status.Report{HAProxyVersion: "2.6"}, nil)
	var code int
	out := captureStdout(t, func() { code = statusCommand(where{base: base}, "") })
	if code != 3 || !strings.Contains(out, "haproxy@alpha:\n  haproxy 2.6 pid 11 gen 1") || !strings.Contains(out, "\n\nhaproxy@beta:\n  haproxy 2.6 not serving\n") {
		t.Errorf("status of two wrappers, one not serving: exit %d, output:\n%s", code, out)
	}
}

// TestReloadAgainWhileTheConfigurationChanges: an edit that lands while a
// reload runs gets one more reload; a reload with the files unchanged ends
// it, its outcome is the command's.
func TestReloadAgainWhileTheConfigurationChanges(t *testing.T) {
	base := testutil.ShortDir(t)
	dir := mkdir(t, filepath.Join(base, "haproxy"), 0o700)
	cfg := filepath.Join(base, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	var reloads atomic.Int32
	fakeWrapper(t, filepath.Join(dir, ControlSocketName), status.Report{Serving: true}, func() (bool, string) {
		n := reloads.Add(1)
		switch n {
		case 1: // an edit lands during the first reload, which fails
			if err := os.WriteFile(cfg, []byte("broken then fixed"), 0o644); err != nil {
				t.Error(err)
			}
			return false, "[ALERT] broken"
		case 2:
			return true, "generation 2 serving"
		}
		return false, "one reload too many"
	})
	w := where{socket: filepath.Join(dir, ControlSocketName), base: base}
	var code int
	out := captureStdout(t, func() { code = reloadRounds(w, w.socket, []string{cfg}) })
	if code != 0 || reloads.Load() != 2 || !strings.Contains(out, "changed during the reload: reloading again") {
		t.Errorf("exit %d after %d reloads, want 0 after 2; output:\n%s", code, reloads.Load(), out)
	}
	// Unchanged files: one reload. No files known: one reload.
	for _, files := range [][]string{{cfg}, nil} {
		reloads.Store(1)
		out = captureStdout(t, func() { code = reloadRounds(w, w.socket, files) })
		if code != 0 || reloads.Load() != 2 {
			t.Errorf("files %q: exit %d after %d reloads, want 0 after 1; output:\n%s", files, code, reloads.Load()-1, out)
		}
	}
}

// TestConfigFiles: a wrapper's configuration files are its -f arguments
// (relative ones against its working folder), else its CONFIG.
func TestConfigFiles(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		args, env []string
		want      []string
	}{
		{[]string{"-f", "rel.cfg", "-f", "/abs/conf.d"}, []string{"CONFIG=/ignored.cfg"}, []string{filepath.Join(dir, "rel.cfg"), "/abs/conf.d"}},
		{[]string{"-L", "-f"}, []string{"CONFIG=/etc/haproxy/haproxy.cfg"}, []string{"/etc/haproxy/haproxy.cfg"}},
	} {
		// A stand-in for the wrapper: a shell that waits on its stdin,
		// with the wrapper's arguments after its script.
		cmd := exec.Command("/bin/sh", append([]string{"-c", "read x", "sh"}, tt.args...)...)
		cmd.Dir, cmd.Env = dir, tt.env
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The child's /proc/PID/cmdline names the shell only once its
		// exec is complete (os/exec may return a moment before).
		if err := testutil.Poll(5*time.Second, time.Millisecond, func() (bool, string) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
			return strings.HasPrefix(string(b), "/bin/sh\x00"), fmt.Sprintf("cmdline %q", b)
		}); err != nil {
			t.Fatalf("pid %d's cmdline never named the shell: %v", cmd.Process.Pid, err)
		}
		got := configFiles(cmd.Process.Pid)
		stdin.Close()
		_ = cmd.Wait()
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("args %q env %q: %q, want %q", tt.args, tt.env, got, tt.want)
		}
	}
}

// TestFingerprintSeesEdits: in-place writes of the same size and renames
// over a file in a configuration folder change the fingerprint.
func TestFingerprintSeesEdits(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "conf.d", "a.cfg")
	mkdir(t, filepath.Dir(f), 0o755)
	os.WriteFile(f, []byte("x"), 0o644)
	before := fingerprint([]string{filepath.Dir(f)})
	os.WriteFile(f, []byte("y"), 0o644) // same size, in place
	if fingerprint([]string{filepath.Dir(f)}) == before {
		t.Errorf("an in-place edit of a file in a configuration folder is not seen")
	}
	before = fingerprint([]string{filepath.Dir(f)})
	os.WriteFile(f+".new", []byte("z"), 0o644)
	os.Rename(f+".new", f)
	if fingerprint([]string{filepath.Dir(f)}) == before {
		t.Errorf("a file renamed over the configuration is not seen")
	}
}
