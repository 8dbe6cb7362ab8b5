package proc

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/logx"
)

// ForkDaemon is the -D (Type=forking) parent: it starts the long-lived
// wrapper (self with the same arguments) as a new session and returns only
// once that one says haproxy serves (0) or has failed (non-zero, with the
// reason on stderr), so that "systemctl start" fails when haproxy does.
// listen are descriptors systemd passed the parent (LISTEN_FDS) with their
// names: the daemon gets them from fd 4 on (EnvDaemonListen).
func ForkDaemon(self string, args []string, listen []int, names []string) int {
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "haproxy-systemd-wrapper: -D: %v\n", err)
		return ExitStartFailed
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		fmt.Fprintf(os.Stderr, "haproxy-systemd-wrapper: -D: %v\n", err)
		return ExitStartFailed
	}
	env := SetEnv(os.Environ(), EnvDaemonFD, "3")
	files := []uintptr{devnull.Fd(), os.Stdout.Fd(), os.Stderr.Fd(), w.Fd()}
	if len(listen) > 0 {
		env = SetEnv(env, EnvDaemonListen, strconv.Itoa(len(listen)))
		env = SetEnv(env, "LISTEN_FDNAMES", strings.Join(names, ":"))
		for _, fd := range listen {
			files = append(files, uintptr(fd))
		}
	}
	pid, err := syscall.ForkExec(self, append([]string{os.Args[0]}, args...), &syscall.ProcAttr{
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	w.Close()
	devnull.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "haproxy-systemd-wrapper: -D: start %s: %v\n", self, err)
		return ExitStartFailed
	}
	line, _ := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case line == "ok":
		return ExitOK
	case strings.HasPrefix(line, "error "):
		fmt.Fprintln(os.Stderr, logx.Bound("haproxy-systemd-wrapper: haproxy did not start: "+strings.TrimPrefix(line, "error "), 0))
	}
	// No word, or an error: the daemon exits; report its code.
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err == nil {
		if c := StatusCode(ws); c != 0 {
			return c
		}
	}
	return ExitStartFailed
}

// DaemonPipeFromEnv returns, in the daemon, the pipe to the waiting parent
// (nil when not started by ForkDaemon). The variable is removed.
func DaemonPipeFromEnv() *os.File {
	v, ok := os.LookupEnv(EnvDaemonFD)
	if !ok {
		return nil
	}
	os.Unsetenv(EnvDaemonFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "daemon-pipe")
}
