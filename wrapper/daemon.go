package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Type=forking: with -D the process systemd started (the parent) starts the
// long-lived wrapper as a new session and returns only once haproxy serves
// (exit 0, after the wrapper's pid file is written for PIDFile=) or has
// failed (exit 1 and the reason on stderr), so that "systemctl start" fails
// when haproxy does.
func forkDaemon(self string) int {
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "haproxy-systemd-wrapper: -D: %v\n", err)
		return exitStartFailed
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		fmt.Fprintf(os.Stderr, "haproxy-systemd-wrapper: -D: %v\n", err)
		return exitStartFailed
	}
	env := setEnv(os.Environ(), daemonEnv, "3")
	pid, err := syscall.ForkExec(self, os.Args, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{devnull.Fd(), os.Stdout.Fd(), os.Stderr.Fd(), w.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	w.Close()
	devnull.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "haproxy-systemd-wrapper: -D: start %s: %v\n", self, err)
		return exitStartFailed
	}
	line, _ := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case line == "ok":
		return exitOK
	case strings.HasPrefix(line, "error "):
		fmt.Fprintf(os.Stderr, "haproxy-systemd-wrapper: haproxy did not start: %s\n", strings.TrimPrefix(line, "error "))
	}
	// No word, or an error: the daemon exits; report its code.
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err == nil {
		if c := statusCode(ws); c != 0 {
			return c
		}
	}
	return exitStartFailed
}

// daemonPipeFromEnv returns the pipe to the waiting parent, in the daemon.
func daemonPipeFromEnv() *os.File {
	v, ok := os.LookupEnv(daemonEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(daemonEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "daemon-pipe")
}

// daemonDone tells the waiting parent the outcome of the first start, once:
// "" is success (the wrapper pid file is written first).
func (s *supervisor) daemonDone(reason string) {
	if s.daemonPipe == nil {
		return
	}
	p := s.daemonPipe
	s.daemonPipe = nil
	defer p.Close()
	if reason == "" {
		if err := writePIDFile(s.set.WrapperPID, []int{os.Getpid()}); err == nil {
			s.st.WroteWrapperPID = true
		} else {
			reason = fmt.Sprintf("%v: set HAPROXY_WRAPPER_PIDFILE to a writable path", err)
			log.Errorf("%s", reason)
			go s.post(func() {
				s.exitCode = exitStartFailed
				s.beginStop(unix.SIGTERM, "the wrapper pid file could not be written")
			})
		}
	}
	if reason == "" {
		fmt.Fprintln(p, "ok")
		return
	}
	fmt.Fprintf(p, "error %s\n", strings.ReplaceAll(reason, "\n", " "))
}
