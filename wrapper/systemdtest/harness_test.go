package systemdtest

// A harness that boots a real systemd (Debian 12's systemd 252) as PID 1 of
// private namespaces, following shared/design/real-systemd.md:
//
//   - a cgroup for the boot under the host's cgroup2 mount;
//   - `unshare --pid --fork --kill-child --mount --propagation private --uts
//     --ipc --cgroup --mount-proc` a shell that mounts a tmpfs on /run,
//     cgroup2 (nsdelegate) on /sys/fs/cgroup, tmpfs on /var/log/journal and
//     /etc/systemd/system, then execs systemd with a minimal unit set;
//   - commands inside run through `nsenter -t PID -m -p`;
//   - files inside the private mounts are reached from the host through
//     /proc/PID/root (the mount namespace of the booted systemd).
//
// Everything else of the host file system is shared, so test binaries and
// configurations live in temporary folders under hostBase: not under /tmp,
// which the units' PrivateTmp=yes hides from the service.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/loadgen"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

const (
	systemdBin = "/lib/systemd/systemd"
	// bootTarget is the unit the booted systemd starts.
	bootTarget = "hsw-test.target"
	// wrapperName is the file name of the wrapper binary under test.
	wrapperName = "haproxy-systemd-wrapper"
)

var (
	// binDir holds the test build of the wrapper (TestMain).
	binDir string
	// skipReason is non-empty when this machine cannot boot systemd.
	skipReason string
	// bootSeq numbers boots within this test binary (cgroup names).
	bootSeq atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

// hostBase holds the test build and configurations: a folder the shipped
// units' sandboxing leaves visible (not /tmp, /var/tmp or /home).
const hostBase = "/var/lib/hsw-systemdtest"

// SharedTempDir is a temporary folder (mode 0755) under hostBase, removed
// after the test: the service sees it, unlike t.TempDir() under /tmp.
func SharedTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(hostBase, "t-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func testMain(m *testing.M) int {
	if err := os.MkdirAll(hostBase, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "systemdtest:", err)
		return 1
	}
	dir, err := os.MkdirTemp(hostBase, "bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "systemdtest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "systemdtest:", err)
		return 1
	}
	bin := filepath.Join(dir, wrapperName)
	goBin := "go"
	if _, err := exec.LookPath(goBin); err != nil && os.Getenv("GOROOT") != "" {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	build := exec.Command(goBin, "build", "-o", bin, "../")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static, like make build
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "systemdtest: building the wrapper (go build -o %s ../) failed: %v\n%s", bin, err, out)
		return 1
	}
	binDir = dir
	skipReason = checkPrerequisites()
	if suite := os.Getenv("HSW_SUITE"); suite != "" && skipReason == "" {
		root, err := suiteRoot(suite)
		if err != nil {
			fmt.Fprintln(os.Stderr, "systemdtest:", err)
			return 1
		}
		bootRoot = root
		v, _ := exec.Command("chroot", root, "/usr/lib/systemd/systemd", "--version").Output()
		first, _, _ := strings.Cut(string(v), "\n")
		fmt.Fprintf(os.Stderr, "systemdtest: booting %s's own %s from %s\n", suite, first, root)
	}
	return m.Run()
}

// checkPrerequisites says why systemd cannot be booted here ("" if it can).
// Only these two reasons allow a skip; anything else missing is a failure.
func checkPrerequisites() string {
	var reasons []string
	if os.Geteuid() != 0 {
		reasons = append(reasons, "not running as root (booting systemd in namespaces needs root)")
	}
	if fi, err := os.Stat(systemdBin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		reasons = append(reasons, systemdBin+" is missing")
	}
	return strings.Join(reasons, "; ")
}

// requireSystemd skips the test when systemd cannot be booted here, except
// under CI=true, where that is a failure.
func requireSystemd(t *testing.T) {
	t.Helper()
	if skipReason == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("real-systemd tests cannot run: %s (CI=true: failing instead of skipping)", skipReason)
	}
	t.Skipf("skipping real-systemd test: %s (set CI=true to make this a failure)", skipReason)
}

// WrapperPath is the path of the wrapper binary under test.
func WrapperPath() string { return filepath.Join(binDir, wrapperName) }

// RenderUnit renders contrib/systemd/<template> the way the Makefile does
// (@SBINDIR@ is the folder of the test build, the line @HARDENING@ is
// contrib/systemd/hardening.inc).
func RenderUnit(t *testing.T, template string) string {
	t.Helper()
	b, err := os.ReadFile(ContribPath(template))
	if err != nil {
		t.Fatalf("reading unit template: %v", err)
	}
	h, err := os.ReadFile(ContribPath("hardening.inc"))
	if err != nil {
		t.Fatalf("reading the hardening block: %v", err)
	}
	s := strings.ReplaceAll(string(b), "@SBINDIR@", binDir)
	return strings.Replace(s, "@HARDENING@\n", string(h), 1)
}

// ContribPath is the path of a file in contrib/systemd.
func ContribPath(name string) string {
	return filepath.Join("..", "..", "contrib", "systemd", name)
}

// Systemd is one booted systemd.
type Systemd struct {
	t *testing.T
	// PID is the host pid of the booted systemd (PID 1 inside).
	PID int
	// Root is /proc/PID/root: the file system as the booted systemd sees it.
	Root string
	// Cgroup is the host path of the cgroup holding the whole boot.
	Cgroup string
	// UnitDir is the host folder with the minimal unit set.
	UnitDir string
	// rootDir is the root it was chrooted into ("" for the host's).
	rootDir string

	cmd  *exec.Cmd
	done chan struct{}
	out  testutil.Buffer
}

// minimalTargets are the targets systemd wants to exist; they are empty.
var minimalTargets = []string{
	"default", "basic", "sysinit", "local-fs", "local-fs-pre", "paths", "slices",
	"sockets", "timers", "shutdown", "final", "halt", "poweroff", "reboot", "umount",
	"network", "network-online", "multi-user",
}

// baseUnits are written next to the empty targets: journald (so that
// journalctl works inside) and a working exit.target (so that
// `systemctl exit` stops the units and ends systemd).
var baseUnits = map[string]string{
	bootTarget: `[Unit]
Description=haproxy-systemd-wrapper test boot
Wants=systemd-journald.socket systemd-journald-dev-log.socket systemd-journald.service
`,
	"exit.target": `[Unit]
Description=Exit the Container
DefaultDependencies=no
Requires=systemd-exit.service
After=systemd-exit.service
AllowIsolate=yes
`,
	"systemd-exit.service": `[Unit]
Description=Exit the Container
DefaultDependencies=no
Requires=shutdown.target final.target
After=shutdown.target final.target
SuccessAction=exit-force
`,
	"systemd-journald.socket": `[Unit]
Description=Journal Socket
DefaultDependencies=no
Before=sockets.target

[Socket]
ListenStream=/run/systemd/journal/stdout
ListenDatagram=/run/systemd/journal/socket
SocketMode=0666
PassCredentials=yes
PassSecurity=yes
ReceiveBuffer=8M
Service=systemd-journald.service
`,
	// syslog(3) clients (haproxy's "log /dev/log") reach journald here; no
	// /dev/log symlink is made (/dev is the host's): a service with
	// PrivateDevices=yes gets its own, pointing at this socket.
	"systemd-journald-dev-log.socket": `[Unit]
Description=Journal Socket (/dev/log)
DefaultDependencies=no
Before=sockets.target

[Socket]
Service=systemd-journald.service
ListenDatagram=/run/systemd/journal/dev-log
SocketMode=0666
PassCredentials=yes
PassSecurity=yes
ReceiveBuffer=8M
`,
	"systemd-journald.service": `[Unit]
Description=Journal Service
DefaultDependencies=no
Requires=systemd-journald.socket
After=systemd-journald.socket

[Service]
Type=notify
ExecStart=/lib/systemd/systemd-journald
Restart=always
RestartSec=0
RuntimeDirectory=systemd/journal
RuntimeDirectoryPreserve=yes
Sockets=systemd-journald.socket systemd-journald-dev-log.socket
StandardOutput=null
FileDescriptorStoreMax=4224
`,
}

// cgroup2Mount finds where the host mounts cgroup2: /sys/fs/cgroup on a
// unified host, /sys/fs/cgroup/unified on a hybrid one.
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	var found []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && len(fields) > 4 {
				found = append(found, fields[4])
			}
		}
	}
	if len(found) == 0 {
		return "", errors.New("no cgroup2 mount in /proc/self/mountinfo")
	}
	for _, m := range found {
		if m == "/sys/fs/cgroup" {
			return m, nil
		}
	}
	return found[0], nil
}

// Boot starts a systemd in private namespaces and waits until it runs.
// Its teardown is registered with t.Cleanup.
func Boot(t *testing.T) *Systemd {
	t.Helper()
	return boot(t, false)
}

// BootOverlay is Boot on a writable overlay of the Debian root (HSW_SUITE):
// what the test changes there (a package installed) is dropped with the
// boot, the cached root stays as it was.
func BootOverlay(t *testing.T) *Systemd {
	t.Helper()
	if bootRoot == "" {
		t.Fatal("BootOverlay needs a Debian root: HSW_SUITE")
	}
	return boot(t, true)
}

func boot(t *testing.T, overlay bool) *Systemd {
	t.Helper()
	requireSystemd(t)
	for _, tool := range []string{"unshare", "nsenter", "systemctl", "journalctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: %v", tool, err)
		}
	}

	cgRoot, err := cgroup2Mount()
	if err != nil {
		t.Fatalf("finding the cgroup2 mount: %v", err)
	}
	name := fmt.Sprintf("hsw-systemdtest-%d-%d", os.Getpid(), bootSeq.Add(1))
	s := &Systemd{t: t, Cgroup: filepath.Join(cgRoot, name), done: make(chan struct{})}
	if err := os.Mkdir(s.Cgroup, 0o755); err != nil {
		t.Fatalf("creating cgroup %s: %v", s.Cgroup, err)
	}
	// Registered first so that it runs last, after the systemd is gone.
	t.Cleanup(s.removeCgroups)

	s.UnitDir = t.TempDir()
	if err := os.Chmod(s.UnitDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tg := range minimalTargets {
		writeFile(t, filepath.Join(s.UnitDir, tg+".target"),
			fmt.Sprintf("[Unit]\nDescription=%s (empty, test boot)\nDefaultDependencies=no\n", tg))
	}
	for n, c := range baseUnits {
		writeFile(t, filepath.Join(s.UnitDir, n), c)
	}

	// R is "" for the host's own systemd, else a Debian root (HSW_SUITE)
	// whose own systemd boots, chrooted, with the host's /dev, /sys and
	// network, and the test folders bound in at the same paths.
	R, sysd, chroot := bootRoot, systemdBin, ""
	lines := []string{"set -e", "mount --make-rprivate /"}
	if overlay {
		ov := SharedTempDir(t)
		lines = append(lines,
			"mkdir -p "+ov+"/upper "+ov+"/work "+ov+"/root",
			"mount -t overlay overlay -o lowerdir="+R+",upperdir="+ov+"/upper,workdir="+ov+"/work "+ov+"/root")
		R = ov + "/root"
	}
	s.rootDir = R
	if R != "" {
		sysd, chroot = "/usr/lib/systemd/systemd", "chroot "+R+" "
		lines = append(lines,
			"mount --bind "+R+" "+R,
			"mount -t proc proc "+R+"/proc",
			"mount --rbind /sys "+R+"/sys",
			"mount --rbind /dev "+R+"/dev",
			"mount -t tmpfs -o mode=1777 tmpfs "+R+"/tmp",
			"mkdir -p "+R+s.UnitDir+" "+R+hostBase,
			"mount --bind "+s.UnitDir+" "+R+s.UnitDir,
			"mount --bind "+hostBase+" "+R+hostBase,
		)
	}
	lines = append(lines,
		"mount -t tmpfs -o mode=0755 tmpfs "+R+"/run",
		// journald: no host kernel messages, no wall messages to the host.
		"mkdir -p "+R+"/run/systemd/journald.conf.d",
		`printf '[Journal]\nReadKMsg=no\nForwardToSyslog=no\nForwardToKMsg=no\nForwardToConsole=no\nForwardToWall=no\n' > `+R+`/run/systemd/journald.conf.d/hsw-test.conf`,
		"mount -t cgroup2 -o nsdelegate cgroup2 "+R+"/sys/fs/cgroup",
		"mkdir -p "+R+"/var/log/journal",
		"mount -t tmpfs -o mode=0755 tmpfs "+R+"/var/log/journal",
		"mount -t tmpfs -o mode=0755 tmpfs "+R+"/etc/systemd/system",
		fmt.Sprintf("exec env -i container=%s PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "+
			"SYSTEMD_UNIT_PATH=/etc/systemd/system:%s %s%s --system --unit=%s --show-status=no",
			name, s.UnitDir, chroot, sysd, bootTarget),
	)
	inner := strings.Join(lines, "\n")
	// The outer shell moves itself into the cgroup, then becomes unshare.
	s.cmd = exec.Command("/bin/sh", "-c",
		`echo $$ > "$1/cgroup.procs" && exec unshare --pid --fork --kill-child --mount --propagation private --uts --ipc --cgroup --mount-proc /bin/sh -c "$2"`,
		"sh", s.Cgroup, inner)
	s.cmd.Stdout = &s.out
	s.cmd.Stderr = &s.out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting unshare: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(s.teardown)

	// systemd is the only child of unshare.
	upid := s.cmd.Process.Pid
	err = testutil.Poll(10*time.Second, 20*time.Millisecond, func() (bool, string) {
		select {
		case <-s.done:
			return false, "unshare exited"
		default:
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", upid, upid))
		if err != nil {
			return false, err.Error()
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return false, "unshare has no child yet"
		}
		pid, _ := strconv.Atoi(f[0])
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if !strings.HasSuffix(exe, "/systemd") {
			return false, fmt.Sprintf("child %d runs %q, not yet systemd", pid, exe)
		}
		s.PID = pid
		return true, ""
	})
	if err != nil {
		t.Fatalf("systemd did not start: %v\noutput:\n%s", err, s.out.String())
	}
	s.Root = fmt.Sprintf("/proc/%d/root", s.PID)

	var state string
	err = testutil.Poll(20*time.Second, 50*time.Millisecond, func() (bool, string) {
		out, _ := s.SystemctlTimeout(5*time.Second, "is-system-running")
		state = out
		return out == "running" || out == "degraded", "is-system-running: " + out
	})
	if err != nil {
		jobs, _ := s.Systemctl("list-jobs", "--no-pager")
		t.Fatalf("booted systemd never became running: %v\njobs:\n%s\noutput:\n%s", err, jobs, s.out.String())
	}
	t.Logf("systemd booted: host pid %d, cgroup %s, state %s", s.PID, s.Cgroup, state)
	return s
}

// teardown stops the booted systemd: `systemctl exit`, then SIGKILL.
func (s *Systemd) teardown() {
	t := s.t
	if t.Failed() && s.PID != 0 {
		if out, err := s.Exec("journalctl", "--no-pager", "-o", "short-precise", "-n", "200"); err == nil || out != "" {
			t.Logf("journal of the booted systemd (last 200 lines):\n%s", out)
		}
	}
	select {
	case <-s.done:
	default:
		if s.PID != 0 {
			if out, err := s.SystemctlTimeout(5*time.Second, "exit", "0"); err != nil {
				t.Logf("systemctl exit 0: %v: %s", err, out)
			}
		}
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Logf("systemd (pid %d) did not exit within 10s of `systemctl exit`: SIGKILL", s.PID)
			if s.PID != 0 {
				_ = syscall.Kill(s.PID, syscall.SIGKILL)
			}
			_ = s.cmd.Process.Kill()
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				t.Errorf("unshare (pid %d) still alive after SIGKILL", s.cmd.Process.Pid)
			}
		}
	}
	if t.Failed() {
		if o := s.out.String(); o != "" {
			t.Logf("output of unshare/systemd:\n%s", o)
		}
	}
}

// removeCgroups removes the boot's cgroup folders, deepest first.
func (s *Systemd) removeCgroups() {
	err := testutil.Poll(10*time.Second, 50*time.Millisecond, func() (bool, string) {
		var dirs []string
		_ = filepath.WalkDir(s.Cgroup, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		if len(dirs) == 0 {
			return true, ""
		}
		sort.Slice(dirs, func(i, j int) bool {
			return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/")
		})
		var last error
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				last = fmt.Errorf("rmdir %s: %w", d, err)
			}
		}
		if last != nil {
			return false, last.Error()
		}
		return true, ""
	})
	if err != nil {
		s.t.Errorf("removing cgroup %s: %v", s.Cgroup, err)
	}
}

// ExecTimeout runs a command inside the booted systemd's mount and PID
// namespaces and returns its combined output, trimmed.
func (s *Systemd) ExecTimeout(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// -r -w: the booted root's own binaries (a Debian root's systemctl
	// talks to its own systemd), from its root folder.
	full := append([]string{"-t", strconv.Itoa(s.PID), "-m", "-p", "-r", "-w", "--"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", full...)
	cmd.Env = append(os.Environ(), "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "LC_ALL=C")
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s: timed out after %v (%w)", strings.Join(args, " "), timeout, err)
	}
	return strings.TrimSpace(string(out)), err
}

// Exec runs a command inside (60 s at most).
func (s *Systemd) Exec(args ...string) (string, error) {
	return s.ExecTimeout(60*time.Second, args...)
}

// Systemctl runs systemctl inside (60 s at most).
func (s *Systemd) Systemctl(args ...string) (string, error) {
	return s.SystemctlTimeout(60*time.Second, args...)
}

// SystemctlTimeout runs systemctl inside with a time limit.
func (s *Systemd) SystemctlTimeout(timeout time.Duration, args ...string) (string, error) {
	return s.ExecTimeout(timeout, append([]string{"systemctl", "--no-pager", "--no-ask-password"}, args...)...)
}

// DaemonReload runs `systemctl daemon-reload` and fails the test on error.
func (s *Systemd) DaemonReload() {
	s.t.Helper()
	if out, err := s.Systemctl("daemon-reload"); err != nil {
		s.t.Fatalf("systemctl daemon-reload: %v: %s", err, out)
	}
}

// Show returns `systemctl show -p props unit` as a map.
func (s *Systemd) Show(unit string, props ...string) map[string]string {
	s.t.Helper()
	m, err := s.show(unit, props...)
	if err != nil {
		s.t.Fatal(err)
	}
	return m
}

func (s *Systemd) show(unit string, props ...string) (map[string]string, error) {
	args := []string{"show"}
	if len(props) > 0 {
		args = append(args, "-p", strings.Join(props, ","))
	}
	out, err := s.Systemctl(append(args, unit)...)
	if err != nil {
		return nil, fmt.Errorf("systemctl show %s: %v: %s", unit, err, out)
	}
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m, nil
}

// StateProps are the properties the tests assert on.
var StateProps = []string{"MainPID", "ActiveState", "SubState", "StatusText", "Result", "ExecMainStatus", "NRestarts"}

// State is Show(unit, StateProps...).
func (s *Systemd) State(unit string) map[string]string {
	s.t.Helper()
	return s.Show(unit, StateProps...)
}

// FormatState renders a Show map compactly, keys sorted.
func FormatState(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

// WaitState polls Show(unit, StateProps...) until cond holds.
func (s *Systemd) WaitState(unit string, timeout time.Duration, what string, cond func(map[string]string) bool) map[string]string {
	s.t.Helper()
	var last map[string]string
	err := testutil.Poll(timeout, 50*time.Millisecond, func() (bool, string) {
		m, err := s.show(unit, StateProps...)
		if err != nil {
			return false, err.Error()
		}
		last = m
		return cond(m), FormatState(m)
	})
	if err != nil {
		s.t.Fatalf("%s: waiting for %s: %v", unit, what, err)
	}
	return last
}

// Path is the host path of a file inside the booted systemd's mounts.
func (s *Systemd) Path(p string) string { return s.Root + p }

// ReadFile reads a file as the booted systemd sees it (its /proc, /run, ...).
func (s *Systemd) ReadFile(p string) (string, error) {
	b, err := os.ReadFile(s.Path(p))
	return string(b), err
}

// WriteFile writes a file inside (e.g. below /run), creating folders.
func (s *Systemd) WriteFile(p, content string) {
	s.t.Helper()
	writeFile(s.t, s.Path(p), content)
}

// WriteUnit writes /etc/systemd/system/<name> inside (private tmpfs).
// Call DaemonReload afterwards.
func (s *Systemd) WriteUnit(name, content string) {
	s.t.Helper()
	s.WriteFile("/etc/systemd/system/"+name, content)
}

// WriteDropIn writes /etc/systemd/system/<unit>.d/<name> inside.
// Call DaemonReload afterwards.
func (s *Systemd) WriteDropIn(unit, name, content string) {
	s.t.Helper()
	s.WriteFile("/etc/systemd/system/"+unit+".d/"+name, content)
}

// Journal returns journalctl -u unit inside (after asking journald to sync).
func (s *Systemd) Journal(unit string) string {
	s.t.Helper()
	_, _ = s.ExecTimeout(10*time.Second, "journalctl", "--sync")
	out, err := s.Exec("journalctl", "--no-pager", "-o", "short-precise", "-u", unit)
	if err != nil {
		s.t.Logf("journalctl -u %s: %v", unit, err)
	}
	return out
}

// JournalOnFailure logs the journal of each unit at the end of t, if t
// failed (before the boot's own teardown).
func (s *Systemd) JournalOnFailure(t *testing.T, units ...string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, u := range units {
			t.Logf("journal of %s:\n%s", u, s.Journal(u))
		}
	})
}

// WaitJournal polls the unit's journal until it contains substr; it
// returns the journal and whether substr was found.
func (s *Systemd) WaitJournal(unit, substr string, timeout time.Duration) (string, bool) {
	s.t.Helper()
	var j string
	err := testutil.Poll(timeout, 100*time.Millisecond, func() (bool, string) {
		j = s.Journal(unit)
		return strings.Contains(j, substr), ""
	})
	return j, err == nil
}

// CgroupProcs lists the pids in a unit's cgroup, given its ControlGroup
// property. The kernel translates cgroup.procs into the reader's PID
// namespace, so these are host pids (use them to count, not to compare with
// MainPID). A cgroup that no longer exists has none.
func (s *Systemd) CgroupProcs(controlGroup string) ([]int, error) {
	if controlGroup == "" {
		return nil, nil
	}
	b, err := os.ReadFile(s.Path(filepath.Join("/sys/fs/cgroup", controlGroup, "cgroup.procs")))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids, nil
}

// ProcExe is the executable of a namespace pid (readlink /proc/PID/exe).
func (s *Systemd) ProcExe(pid int) string {
	exe, _ := os.Readlink(s.Path(fmt.Sprintf("/proc/%d/exe", pid)))
	// Read from the host, the path of a process chrooted into a Debian
	// root starts with that root.
	if s.rootDir != "" {
		exe = strings.TrimPrefix(exe, s.rootDir)
	}
	return exe
}

// WaitExe waits (5 s at most) until pid runs want and returns what it runs:
// a Type=simple unit is "active" as soon as systemd forked, and systemd
// >= 255 forks systemd-executor, which only then executes the service.
func (s *Systemd) WaitExe(pid int, want string) (string, bool) {
	var exe string
	err := testutil.Poll(5*time.Second, 10*time.Millisecond, func() (bool, string) {
		exe = s.ProcExe(pid)
		return exe == want, "runs " + exe
	})
	return exe, err == nil
}

// ProcComm is /proc/PID/comm of a namespace pid.
func (s *Systemd) ProcComm(pid int) string {
	c, _ := s.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(c)
}

// ProcCmdline is /proc/PID/cmdline of a namespace pid, spaces between args.
func (s *Systemd) ProcCmdline(pid int) string {
	c, _ := s.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(c, "\x00", " "))
}

// Children lists the children of a namespace pid (all its threads).
func (s *Systemd) Children(pid int) []int {
	files, _ := filepath.Glob(s.Path(fmt.Sprintf("/proc/%d/task/*/children", pid)))
	var kids []int
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, fld := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(fld); err == nil {
				kids = append(kids, n)
			}
		}
	}
	return kids
}

// Descendants lists all descendants of a namespace pid.
func (s *Systemd) Descendants(pid int) []int {
	var all []int
	queue := s.Children(pid)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		all = append(all, p)
		queue = append(queue, s.Children(p)...)
	}
	return all
}

// KillInside sends a signal to a namespace pid (kill run inside).
func (s *Systemd) KillInside(pid int, sig string) {
	s.t.Helper()
	if out, err := s.Exec("kill", "-"+sig, strconv.Itoa(pid)); err != nil {
		s.t.Fatalf("kill -%s %d inside: %v: %s", sig, pid, err, out)
	}
}

// UnixRequest sends one command to a unix stream socket inside (e.g. the
// haproxy stats socket) and returns the whole answer.
func (s *Systemd) UnixRequest(sock, request string) (string, error) {
	c, err := net.DialTimeout("unix", s.Path(sock), 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// ShowInfo runs haproxy's `show info` on a stats socket inside.
func (s *Systemd) ShowInfo(sock string) (map[string]string, error) {
	out, err := s.UnixRequest(sock, "show info\n")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if m["Pid"] == "" {
		return m, fmt.Errorf("show info on %s has no Pid: %q", sock, out)
	}
	return m, nil
}

// --- helpers not tied to a boot ---

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// FreePort picks a free TCP port on 127.0.0.1.
func FreePort(t *testing.T) int {
	t.Helper()
	p, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var httpClient = &http.Client{
	Timeout:   3 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
}

// HTTPGet does one GET on 127.0.0.1:port with a new connection.
func HTTPGet(port int) (int, string, error) {
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// WaitHTTP polls until 127.0.0.1:port answers 200 with a body containing want.
func WaitHTTP(t *testing.T, port int, want string, timeout time.Duration) {
	t.Helper()
	err := testutil.Poll(timeout, 50*time.Millisecond, func() (bool, string) {
		code, body, err := HTTPGet(port)
		if err != nil {
			return false, err.Error()
		}
		return code == 200 && strings.Contains(body, want), fmt.Sprintf("status %d body %q", code, body)
	})
	if err != nil {
		t.Fatalf("HTTP on 127.0.0.1:%d: %v", port, err)
	}
}

// LoadGen runs the project's load generator (new connection per request)
// in the background, bounded in time and count.
type LoadGen struct {
	done   atomic.Int64
	cancel context.CancelFunc
	res    chan loadgen.Result
}

// StartLoad starts workers against 127.0.0.1:port for at most maxDur and at
// most maxPerWorker requests each.
func StartLoad(port, workers int, maxDur time.Duration, maxPerWorker int) *LoadGen {
	ctx, cancel := context.WithTimeout(context.Background(), maxDur)
	l := &LoadGen{cancel: cancel, res: make(chan loadgen.Result, 1)}
	o := loadgen.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Workers: workers, Timeout: 5 * time.Second,
		MaxPerClient: maxPerWorker, Done: &l.done}
	go func() { l.res <- loadgen.Run(ctx, o) }()
	return l
}

// Done is the number of requests finished so far.
func (l *LoadGen) Done() int64 { return l.done.Load() }

// Stop stops the workers and returns the counts and the first errors.
func (l *LoadGen) Stop() (ok, failed int64, errs []string) {
	l.cancel()
	r := <-l.res
	return int64(r.Sent - r.Failed), int64(r.Failed), r.Samples
}

// TestHarness checks the harness itself with a throwaway Type=notify unit,
// independent of the wrapper.
func TestHarness(t *testing.T) {
	s := Boot(t)
	s.WriteUnit("dummy.service", `[Service]
Type=notify
NotifyAccess=all
ExecStart=/bin/sh -c 'echo hello-from-dummy; systemd-notify --ready --status="dummy up"; while :; do sleep 1; done'
KillMode=mixed
`)
	s.WriteDropIn("dummy.service", "10-env.conf", "[Service]\nEnvironment=FOO=bar\n")
	s.DaemonReload()
	if out, err := s.Systemctl("start", "dummy.service"); err != nil {
		t.Fatalf("systemctl start dummy.service: %v: %s", err, out)
	}
	st := s.State("dummy.service")
	t.Logf("dummy.service: %s", FormatState(st))
	if st["ActiveState"] != "active" || st["SubState"] != "running" {
		t.Fatalf("dummy.service not active/running: %s", FormatState(st))
	}
	pid, _ := strconv.Atoi(st["MainPID"])
	if pid == 0 || s.ProcComm(pid) != "sh" {
		t.Fatalf("MainPID %d comm %q, want sh", pid, s.ProcComm(pid))
	}
	if len(s.Children(pid)) == 0 {
		t.Errorf("no children found for MainPID %d", pid)
	}
	p := s.Show("dummy.service", "DropInPaths", "Environment", "ControlGroup")
	if !strings.Contains(p["DropInPaths"], "/etc/systemd/system/dummy.service.d/10-env.conf") || p["Environment"] != "FOO=bar" {
		t.Errorf("drop-in not applied: %s", FormatState(p))
	}
	if j, ok := s.WaitJournal("dummy.service", "hello-from-dummy", 10*time.Second); !ok {
		t.Errorf("journal lacks the unit's output:\n%s", j)
	}
	procs, err := s.CgroupProcs(p["ControlGroup"])
	if err != nil || len(procs) == 0 {
		t.Errorf("cgroup.procs of %s: %v %v", p["ControlGroup"], procs, err)
	}
	if out, err := s.Systemctl("stop", "dummy.service"); err != nil {
		t.Fatalf("systemctl stop: %v: %s", err, out)
	}
	st = s.State("dummy.service")
	if st["ActiveState"] != "inactive" || st["Result"] != "success" {
		t.Errorf("after stop: %s", FormatState(st))
	}
	if procs, _ := s.CgroupProcs(p["ControlGroup"]); len(procs) != 0 {
		t.Errorf("processes left in %s: %v", p["ControlGroup"], procs)
	}
}
