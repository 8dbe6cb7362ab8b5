package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
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

// waitFor polls cond every 10ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// shortDir is a temporary folder with a short path (unix socket paths are
// limited to 107 bytes, t.TempDir's can be longer).
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "hw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type wrapperProc struct {
	t       *testing.T
	dir     string
	bin     string
	addr    string // the test haproxy's HTTP address, when real
	cmd     *exec.Cmd
	out     *testutil.Buffer
	done    chan struct{}
	code    int
	ctlPath string
}

type wrapperOpts struct {
	env    []string // extra KEY=VALUE
	args   []string
	copy   bool // copy the test binary instead of a symlink (to delete or replace it)
	noWait bool // do not wait for "serving"
}

// testBinary is the path of this test binary.
func testBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return self
}

// placeBinary puts the test binary into dir under name.
func placeBinary(t *testing.T, dir, name string, copyIt bool) string {
	t.Helper()
	dst := filepath.Join(dir, name)
	if !copyIt {
		if err := os.Symlink(testBinary(t), dst); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	b, err := os.ReadFile(testBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
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
	w := &wrapperProc{t: t, dir: dir, out: &testutil.Buffer{}, done: make(chan struct{}), ctlPath: filepath.Join(dir, "ctl.sock")}
	w.bin = filepath.Join(dir, "haproxy-systemd-wrapper")
	if _, err := os.Lstat(w.bin); err != nil {
		w.bin = placeBinary(t, dir, "haproxy-systemd-wrapper", o.copy)
	}
	env := baseEnv(dir)
	for _, kv := range o.env {
		k, v, _ := strings.Cut(kv, "=")
		env = proc.SetEnv(env, k, v)
		if k == "HAPROXY_WRAPPER_CONTROL_SOCKET" {
			w.ctlPath = v
		}
	}
	w.cmd = exec.Command(w.bin, o.args...)
	w.cmd.Env = env
	w.cmd.Stdout, w.cmd.Stderr = w.out, w.out
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	w.cmd.WaitDelay = 2 * time.Second // a -D daemon keeps the output pipes
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = w.cmd.Wait()
		w.code = w.cmd.ProcessState.ExitCode()
		if ws, ok := w.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			w.code = 128 + int(ws.Signal())
		}
		close(w.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
			t.Errorf("wrapper pid %d did not end after SIGKILL", w.cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("wrapper output:\n%s", w.out.String())
		}
	})
	if !o.noWait {
		w.waitLog("serving", 30*time.Second)
	}
	return w
}

func (w *wrapperProc) pid() int { return w.cmd.Process.Pid }

func (w *wrapperProc) signal(sig syscall.Signal) {
	w.t.Helper()
	if err := syscall.Kill(w.pid(), sig); err != nil {
		w.t.Fatalf("signal wrapper: %v", err)
	}
}

func (w *wrapperProc) waitLog(substr string, timeout time.Duration) {
	w.t.Helper()
	waitFor(w.t, timeout, fmt.Sprintf("%q in the wrapper's log", substr), func() bool {
		return strings.Contains(w.out.String(), substr) || w.exited()
	})
	if !strings.Contains(w.out.String(), substr) {
		w.t.Fatalf("wrapper exited (code %d) before logging %q:\n%s", w.code, substr, w.out.String())
	}
}

func (w *wrapperProc) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// waitExit waits for the wrapper to end and returns its exit code.
func (w *wrapperProc) waitExit(timeout time.Duration) int {
	w.t.Helper()
	select {
	case <-w.done:
		return w.code
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
	waitFor(w.t, 30*time.Second, fmt.Sprintf("%d settled reloads", n), func() bool {
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
	addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
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
		if os.Getenv("CI") == "true" {
			t.Fatalf("/usr/sbin/haproxy missing in CI: make test installs it (make deps)")
		}
		t.Skip("/usr/sbin/haproxy not installed: run make deps")
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
	return startRealIn(t, shortDir(t), "expose-fd listeners", withStats, o)
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

// listenNotify is a notify socket for the wrapper under test.
func listenNotify(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readDatagram reads one notify datagram, bounded.
func readDatagram(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatalf("no notify datagram: %v", err)
	}
	return string(b[:n])
}

// readDatagramWith reads datagrams until one starts with prefix.
func readDatagramWith(t *testing.T, c *net.UnixConn, prefix string) string {
	t.Helper()
	for i := 0; i < 50; i++ {
		if got := readDatagram(t, c); strings.HasPrefix(got, prefix) {
			return got
		}
	}
	t.Fatalf("no datagram starting with %q", prefix)
	return ""
}
