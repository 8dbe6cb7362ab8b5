package systemdtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// Looking inside a boot: a unit's processes, their executables, command
// lines and children, signals to them, haproxy's sockets.

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
