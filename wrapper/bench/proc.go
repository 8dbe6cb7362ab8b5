package main

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
	"strconv"
	"strings"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/loadgen"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// proc is a started supervisor: the wrapper or the haproxy -W master, in a
// process group of its own (its pid is the group's).
type proc struct {
	*testutil.Proc
	logPath string
}

func (pr *proc) exitState() string {
	if pr.Cmd.ProcessState == nil {
		return "running"
	}
	return pr.Cmd.ProcessState.String()
}

func (pr *proc) logTail(n int) string {
	data, _ := os.ReadFile(pr.logPath)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func startProc(c contender, p params, dir, cfg string) (*proc, error) {
	var cmd *exec.Cmd
	env := cleanEnv(os.Environ())
	if c.wrapper {
		cmd = exec.Command(p.wrapper)
		env = append(env,
			"CONFIG="+cfg,
			"PIDFILE="+dir+"/haproxy.pid",
			"HAPROXY_WRAPPER_CONTROL_SOCKET="+dir+"/ctl.sock",
			"HAPROXY_WRAPPER_RUNTIME_DIR="+dir+"/rt",
			"HAPROXY_WRAPPER_PIDFILE="+dir+"/wrapper.pid",
			"HAPROXY_BIN="+p.haproxy)
		if c.handover {
			env = append(env, "HAPROXY_STATS_SOCKET="+dir+"/admin.sock")
		}
		env = append(env, "HAPROXY_WRAPPER_CHECK="+strconv.FormatBool(c.check))
		env = append(env, "HAPROXY_WRAPPER_VERSION_CACHE="+p.versionCache)
	} else if c.raw {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cmd = exec.Command(self, rawLoopArg, p.haproxy, cfg, dir+"/admin.sock")
	} else {
		cmd = exec.Command(p.haproxy, "-W", "-f", cfg)
	}
	logPath := filepath.Join(dir, "out.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close() // the child has its own copy
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdin = nil
	// Files, not pipes: Wait must return when the supervisor exits even if a
	// haproxy that inherited its stderr is still alive.
	cmd.Stdout, cmd.Stderr = lf, lf
	started, err := testutil.StartGroup(cmd)
	if err != nil {
		return nil, err
	}
	return &proc{Proc: started, logPath: logPath}, nil
}

// cleanEnv drops what would change the contenders' behaviour: systemd's
// variables and every setting the bench gives itself.
func cleanEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "CONFIG", k == "PIDFILE", k == "NOTIFY_SOCKET", k == "LISTEN_FDS", k == "LISTEN_PID",
			strings.HasPrefix(k, "WATCHDOG_"), strings.HasPrefix(k, "HAPROXY_"):
			continue
		}
		out = append(out, kv)
	}
	return out
}

// probe opens a new connection, sends one request and returns the pid named
// in the answer.
func probe(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	s, ok := strings.CutPrefix(strings.TrimSpace(string(body)), "pid ")
	pid, err := strconv.Atoi(s)
	if !ok || err != nil {
		return 0, fmt.Errorf("unexpected body %q", body)
	}
	return pid, nil
}

// waitPid polls with new connections until an answer names a pid not in
// seen (any pid when seen is empty), the bound passes, the process exits or
// ctx ends. Probe failures are counted in fails.
func waitPid(ctx context.Context, pr *proc, addr string, seen map[int]bool, bound time.Duration, fails map[string]int) (int, error) {
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for {
		pid, err := probe(addr)
		if err == nil && !seen[pid] {
			return pid, nil
		}
		if err != nil && fails != nil {
			fails[loadgen.Classify(err)]++
		}
		select {
		case <-deadline.C:
			return 0, fmt.Errorf("no new pid within %s", bound)
		case <-pr.Done():
			return 0, fmt.Errorf("exited: %s", pr.exitState())
		case <-ctx.Done():
			return 0, errors.New(whyDone())
		case <-tick.C:
		}
	}
}

// procStat reads utime+stime (ticks) and the process group of pid.
func procStat(pid int) (cpuTicks int64, pgrp int, comm string, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, "", err
	}
	s := string(data)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < 0 {
		return 0, 0, "", fmt.Errorf("bad /proc/%d/stat", pid)
	}
	comm = s[open+1 : end]
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return 0, 0, "", fmt.Errorf("short /proc/%d/stat", pid)
	}
	pgrp, _ = strconv.Atoi(f[2])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st, pgrp, comm, nil
}

func vmHWM(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// describe names a process: pid, state, parent, command line.
func describe(pid int) string {
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	state, ppid := "?", "?"
	if s := string(st); strings.LastIndexByte(s, ')') >= 0 {
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 1 {
			state, ppid = f[0], f[1]
		}
	}
	return fmt.Sprintf("pid %d state %s ppid %s: %s", pid, state, ppid, strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " ")))
}

// groupMembers lists the live (non-zombie) processes of process group pgid:
// the processes this bench started and their descendants.
func groupMembers(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			out = append(out, pid)
		}
	}
	return out
}
