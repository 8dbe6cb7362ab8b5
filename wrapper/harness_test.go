package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/status"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

type wrapperProc struct {
	t       *testing.T
	dir     string
	bin     string
	addr    string // the test haproxy's HTTP address, when real
	p       *testutil.Proc
	out     *testutil.Buffer
	ctlPath string
}

type wrapperOpts struct {
	env    []string // extra KEY=VALUE
	args   []string
	copy   bool      // copy the test binary instead of a symlink (to delete or replace it)
	noWait bool      // do not wait for "serving"
	stdout io.Writer // the wrapper's stdout (default: the output buffer)
	stderr io.Writer // the wrapper's stderr (default: the output buffer)
}

// baseEnv is the test's environment without the variables that would change
// the wrapper's behaviour.
func baseEnv(dir string) []string {
	env := proc.UnsetEnv(os.Environ(), "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CONFIG", "PIDFILE",
		"HAPROXY_STATS_SOCKET", "HAPROXY_BIN", proc.EnvReexec, proc.EnvHandoff, proc.EnvDaemonFD)
	for _, kv := range []string{
		"PIDFILE=" + filepath.Join(dir, "haproxy.pid"),
		"HAPROXY_WRAPPER_CONTROL_SOCKET=" + filepath.Join(dir, "ctl.sock"),
		"HAPROXY_WRAPPER_RUNTIME_DIR=" + filepath.Join(dir, "rt"),
		"HAPROXY_WRAPPER_PIDFILE=" + filepath.Join(dir, "wrapper.pid"),
		"HAPROXY_WRAPPER_LOG_LEVEL=debug",
		"HAPROXY_WRAPPER_START_TIMEOUT=20s",
	} {
		k, v, _ := strings.Cut(kv, "=")
		env = proc.SetEnv(env, k, v)
	}
	return env
}

// startWrapper runs the wrapper (the test binary under its name) in its own
// process group, killed whole at the end of the test.
func startWrapper(t *testing.T, dir string, o wrapperOpts) *wrapperProc {
	t.Helper()
	w := &wrapperProc{t: t, dir: dir, out: &testutil.Buffer{}, ctlPath: filepath.Join(dir, "ctl.sock")}
	w.bin = filepath.Join(dir, "haproxy-systemd-wrapper")
	if _, err := os.Lstat(w.bin); err != nil {
		w.bin = testutil.PlaceSelf(t, dir, "haproxy-systemd-wrapper", o.copy)
	}
	env := baseEnv(dir)
	for _, kv := range o.env {
		k, v, _ := strings.Cut(kv, "=")
		env = proc.SetEnv(env, k, v)
		if k == "HAPROXY_WRAPPER_CONTROL_SOCKET" {
			w.ctlPath = v
		}
	}
	cmd := exec.Command(w.bin, o.args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = w.out, w.out
	if o.stdout != nil {
		cmd.Stdout = o.stdout
	}
	if o.stderr != nil {
		cmd.Stderr = o.stderr
	}
	cmd.WaitDelay = 2 * time.Second // a -D daemon keeps the output pipes
	t.Cleanup(func() {
		// Runs after testutil.Start's: the wrapper has ended.
		if t.Failed() {
			t.Logf("wrapper output:\n%s", w.out.String())
		}
	})
	w.p = testutil.Start(t, cmd)
	if !o.noWait {
		w.waitLog("serving", 30*time.Second)
	}
	return w
}

func (w *wrapperProc) pid() int { return w.p.Pid() }

func (w *wrapperProc) signal(sig syscall.Signal) {
	w.t.Helper()
	if err := syscall.Kill(w.pid(), sig); err != nil {
		w.t.Fatalf("signal wrapper: %v", err)
	}
}

func (w *wrapperProc) waitLog(substr string, timeout time.Duration) {
	w.t.Helper()
	testutil.WaitFor(w.t, timeout, fmt.Sprintf("%q in the wrapper's log", substr), func() bool {
		return strings.Contains(w.out.String(), substr) || w.exited()
	})
	if !strings.Contains(w.out.String(), substr) {
		w.t.Fatalf("wrapper exited (code %d) before logging %q:\n%s", w.p.Code(), substr, w.out.String())
	}
}

func (w *wrapperProc) exited() bool { return w.p.Exited() }

// waitExit waits for the wrapper to end and returns its exit code.
func (w *wrapperProc) waitExit(timeout time.Duration) int {
	w.t.Helper()
	select {
	case <-w.p.Done():
		return w.p.Code()
	case <-time.After(timeout):
		w.t.Fatalf("wrapper still running %s after it should have exited:\n%s", timeout, w.out.String())
	}
	return -1
}

func (w *wrapperProc) status() status.Report {
	w.t.Helper()
	ans, err := control.RequestText(w.ctlPath, "status json", 10*time.Second)
	if err != nil {
		w.t.Fatalf("status: %v", err)
	}
	var r status.Report
	if err := json.Unmarshal([]byte(ans), &r); err != nil {
		w.t.Fatalf("status json %q: %v", ans, err)
	}
	return r
}

// waitReloads waits until n reloads have been settled.
func (w *wrapperProc) waitReloads(n int) status.Report {
	w.t.Helper()
	var r status.Report
	testutil.WaitFor(w.t, 30*time.Second, fmt.Sprintf("%d settled reloads", n), func() bool {
		r = w.status()
		return r.Reloads >= n && !r.ReloadInProgress
	})
	return r
}

// children lists the wrapper's live (non-zombie) and zombie children.
func (w *wrapperProc) children() (live, zombies []int) {
	for _, p := range proc.ChildrenOf(w.pid()) {
		st, _ := proc.Stat(p)
		if st == "" {
			continue
		}
		if st == "Z" {
			zombies = append(zombies, p)
		} else {
			live = append(live, p)
		}
	}
	return live, zombies
}

func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// realConfig writes a haproxy configuration for the real haproxy: an HTTP
// frontend on a free loopback port that answers "pid N", and an admin stats
// socket with expose-fd listeners.
func realConfig(t *testing.T, dir string, statsExtra string) (cfg, addr, stats string) {
	t.Helper()
	addr = fmt.Sprintf("127.0.0.1:%d", testutil.Port(t))
	stats = filepath.Join(dir, "admin.sock")
	cfg = filepath.Join(dir, "haproxy.cfg")
	text := fmt.Sprintf(`global
    stats socket %s mode 600 level admin %s
    hard-stop-after 30s
defaults
    mode http
    timeout connect 2s
    timeout client 20s
    timeout server 20s
    timeout http-keep-alive 1s
frontend test
    bind %s
    http-request return status 200 content-type text/plain lf-string "pid %%pid\n"
`, stats, statsExtra, addr)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg, addr, stats
}

// servedBy asks haproxy once and returns the pid that answered.
func servedBy(addr string) (int, error) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	return strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(b), "pid ")))
}

// requireRealHAProxy skips without haproxy, except in CI where it must be there.
func requireRealHAProxy(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("HSW_HAPROXY"); bin != "" {
		// A by-hand run against another build (README "Compatibility").
		return bin
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err != nil {
		testutil.Unavailable(t, "/usr/sbin/haproxy not installed: make deps installs it")
	}
	return "/usr/sbin/haproxy"
}

// startReal starts the wrapper on the real haproxy with the test config.
func startReal(t *testing.T, withStats bool) *wrapperProc {
	t.Helper()
	return startRealOpts(t, withStats, wrapperOpts{})
}

// startRealOpts is startReal with options; o.env is added to the test
// config's CONFIG, HAPROXY_BIN (and HAPROXY_STATS_SOCKET when withStats).
func startRealOpts(t *testing.T, withStats bool, o wrapperOpts) *wrapperProc {
	t.Helper()
	return startRealIn(t, testutil.ShortDir(t), "expose-fd listeners", withStats, o)
}

// startRealIn starts the wrapper on the real haproxy with the test config
// realConfig(dir, statsExtra) written in dir; o.env wins over the defaults.
func startRealIn(t *testing.T, dir, statsExtra string, withStats bool, o wrapperOpts) *wrapperProc {
	t.Helper()
	bin := requireRealHAProxy(t)
	cfg, addr, stats := realConfig(t, dir, statsExtra)
	env := []string{"CONFIG=" + cfg, "HAPROXY_BIN=" + bin}
	if withStats {
		env = append(env, "HAPROXY_STATS_SOCKET="+stats)
	}
	o.env = append(env, o.env...)
	w := startWrapper(t, dir, o)
	w.addr = addr
	return w
}

// startRealConfig starts the wrapper on the real haproxy with the test
// config and HAPROXY_STATS_SOCKET, and returns the config's path and
// contents (for a test that breaks and restores it).
func startRealConfig(t *testing.T) (w *wrapperProc, cfg string, good []byte) {
	t.Helper()
	w = startRealIn(t, testutil.ShortDir(t), "expose-fd listeners", true, wrapperOpts{})
	cfg = filepath.Join(w.dir, "haproxy.cfg")
	good, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w, cfg, good
}
