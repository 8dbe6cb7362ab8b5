// Command haproxy-systemd-wrapper runs HAProxy under systemd: it starts
// haproxy in the foreground, reloads it with zero lost connections (-sf old
// pids, -x stats socket), stops it cleanly, and tells systemd the truth.
// See README.md for the contract (arguments, environment, signals, exit codes).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// wrapperSignals receives the signals the wrapper acts on. After a re-exec
// they are caught from package initialisation on, the earliest point Go allows.
var wrapperSignals = make(chan os.Signal, 64)

var notifiedSignals = []os.Signal{unix.SIGUSR1, unix.SIGUSR2, unix.SIGHUP, unix.SIGTERM, unix.SIGINT, unix.SIGABRT}

func init() {
	if os.Getenv(reexecEnv) == "1" {
		signal.Notify(wrapperSignals, notifiedSignals...)
	}
}

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { os.Exit(run(os.Args[1:])) }

// run dispatches the wrapper commands and maps errors to exit codes.
func run(args []string) int {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") || len(args) == 1 && isMetaFlag(args[0]) {
		return command(args)
	}
	return supervise(args)
}

func isMetaFlag(a string) bool {
	switch a {
	case "--help", "-help", "-h", "--version", "-version":
		return true
	}
	return false
}

// command runs a wrapper command (a first argument that is not a haproxy option).
func command(args []string) int {
	switch args[0] {
	case "version", "--version", "-version":
		fmt.Printf("haproxy-systemd-wrapper %s\n", version)
		return exitOK
	case "help", "--help", "-help", "-h":
		fmt.Print(helpText())
		return exitOK
	case "reload", "status":
	default:
		fmt.Fprintf(os.Stderr, "haproxy-systemd-wrapper: unknown command %q: use reload, status, version or help (haproxy options start with -)\n", args[0])
		return exitUsage
	}
	set, err := loadSettings()
	if err != nil {
		fmt.Fprintf(os.Stderr, "haproxy-systemd-wrapper: %v\n", err)
		return exitUsage
	}
	if args[0] == "reload" {
		ans, err := controlRequest(set.ControlSocket, "reload", 0)
		if err != nil {
			fmt.Fprintf(os.Stderr, "haproxy-systemd-wrapper: reload: %v\n", err)
			return exitStartFailed
		}
		ans = strings.TrimSpace(ans)
		if rest, ok := strings.CutPrefix(ans, "ok "); ok {
			fmt.Printf("reloaded: %s\n", rest)
			return exitOK
		}
		fmt.Fprintf(os.Stderr, "haproxy-systemd-wrapper: reload failed: %s\n", strings.TrimPrefix(ans, "error "))
		return exitStartFailed
	}
	req := "status"
	if len(args) > 1 && args[1] == "--json" {
		req = "status json"
	}
	ans, err := controlRequest(set.ControlSocket, req, 10*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "haproxy-systemd-wrapper: status: %v\n", err)
		return 3 // LSB: program is not running
	}
	fmt.Print(ans)
	if req == "status json" && strings.Contains(ans, `"serving": true`) || req == "status" && !strings.Contains(ans, "not serving") {
		return exitOK
	}
	return 3
}

// selfPath is the wrapper's own binary, absolute, for re-exec (a relative
// argv[0] must not break it).
func selfPath() string {
	if p, err := os.Executable(); err == nil {
		return strings.TrimSuffix(p, " (deleted)")
	}
	p, _ := filepath.Abs(os.Args[0])
	return p
}

// locateHAProxy finds the haproxy binary the legacy way: $HAPROXY_BIN, else
// "haproxy" next to the wrapper (a wrapper named X-systemd-wrapper runs X),
// else /usr/sbin/haproxy.
func locateHAProxy(override, self string) string {
	if override != "" {
		return override
	}
	dir, base := filepath.Dir(self), filepath.Base(self)
	name := "haproxy"
	if strings.HasSuffix(base, "-systemd-wrapper") && base != "haproxy-systemd-wrapper" {
		name = strings.TrimSuffix(base, "-systemd-wrapper")
	}
	cand := filepath.Join(dir, name)
	if fi, err := os.Stat(cand); err == nil && !fi.IsDir() {
		return cand
	}
	return "/usr/sbin/haproxy"
}

// supervise is the long-lived wrapper; its last log line is always the
// legacy "exit, haproxy RC=N".
func supervise(args []string) int {
	code := superviseSteps(args)
	if code < 0 {
		return exitOK
	}
	log.Noticef("exit, haproxy RC=%d", code)
	return code
}

// superviseSteps is a chain of small steps; -1 means "no exit line" (the
// -D parent, whose daemon logs its own).
func superviseSteps(args []string) int {
	set, err := loadSettings()
	if err != nil {
		log.Errorf("%v", err)
		return exitUsage
	}
	log.level, _ = parseLevel(set.LogLevel)
	inv, err := parseInvocation(args, set.Config, set.PIDFile)
	if err != nil {
		log.Errorf("%v", err)
		return exitUsage
	}
	self := selfPath()
	reexeced := os.Getenv(reexecEnv) == "1"
	daemonPipe := daemonPipeFromEnv()
	if inv.Daemon && !reexeced && daemonPipe == nil {
		code := forkDaemon(self)
		if code == 0 {
			return -1
		}
		return code
	}
	if len(inv.Dropped) > 0 && !reexeced {
		log.Debugf("start-mode flags %s handled by the wrapper, not passed to haproxy", strings.Join(inv.Dropped, " "))
	}
	bin := locateHAProxy(set.HAProxyBin, self)

	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		log.Warningf("cannot become child subreaper: %v", err)
	}
	sigs := wrapperSignals
	signal.Notify(sigs, notifiedSignals...)
	// A broken stderr (journald restarted, a -D parent's pipe closed) must
	// not kill the supervisor: SIGPIPE is caught and dropped, writes fail.
	signal.Notify(make(chan os.Signal, 1), unix.SIGPIPE)
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, unix.SIGCHLD)
	// The mask inherited across a re-exec keeps these blocked on this
	// thread; Notify has unblocked them on the runtime's signal thread.

	s := newSupervisor(set, inv, bin, self)
	s.daemonPipe = daemonPipe
	s.sigs = sigs
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if reexeced {
		state := os.Getenv(stateEnv)
		os.Unsetenv(reexecEnv)
		os.Unsetenv(stateEnv)
		if err := s.restore(state); err != nil {
			log.Errorf("%v: adopting the running children", err)
			s.adoptChildren()
		}
		go s.r.run(ctx, sigchld)
		log.Infof("re-executed, %d haproxy generation(s) kept", len(s.st.Gens))
		if s.ctl == nil {
			s.openControl()
		}
		s.spawnReload()
	} else {
		go s.r.run(ctx, sigchld)
		if err := s.start(); err != nil {
			log.Errorf("%v", err)
			s.daemonDone(err.Error())
			s.notify.Status("haproxy did not start: " + err.Error())
			s.cleanup()
			return startExitCode(err)
		}
		s.openControl()
	}
	go s.runStatus(ctx)
	go s.runWatchdog(ctx)
	code := s.loop()
	s.cleanup()
	return code
}

func (s *supervisor) openControl() {
	ctl, err := listenControl(s, s.set.ControlSocket)
	if err != nil {
		log.Warningf("%v; 'reload' and 'status' commands unavailable, signals still work", err)
		return
	}
	s.ctl = ctl
}

// startExitCode maps a start error to the exit code of the README.
func startExitCode(err error) int {
	var se *spawnError
	if errors.As(err, &se) {
		return se.exitCode()
	}
	var ce *configError
	if errors.As(err, &ce) {
		if c := statusCode(ce.ws); c != 0 {
			return c
		}
	}
	return exitStartFailed
}

// loop is the supervisor's event loop; it returns the exit code.
func (s *supervisor) loop() int {
	for !s.done {
		s.step(true)
	}
	if s.exitCode >= 0 {
		return s.exitCode
	}
	if !s.reaped {
		return exitNoChild
	}
	return stopCode(s.lastStatus, s.stopSig)
}
