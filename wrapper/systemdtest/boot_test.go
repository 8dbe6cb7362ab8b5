package systemdtest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// Booting a systemd as PID 1 of private namespaces (Boot, BootOverlay) and
// tearing it down: the Systemd type, the units a boot starts with, the
// cgroup2 mount.

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
