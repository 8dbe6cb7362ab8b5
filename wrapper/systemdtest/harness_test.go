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
//
// The harness, by what it does: harness_test.go (TestMain, prerequisites,
// paths, rendering the units; TestHarness), boot_test.go (booting and
// tearing down), systemctl_test.go (commands inside, systemctl, unit files,
// the journal), inside_test.go (a unit's processes and sockets),
// net_test.go (ports, HTTP, load). The tests: install_test.go,
// instances_test.go, neverrefuse_test.go, roots_test.go, status_test.go,
// units_test.go, verify_test.go.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
	testutil.Unavailable(t, "real-systemd tests cannot run: %s", skipReason)
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
