// Command haproxy-systemd-wrapper runs HAProxy under systemd: it starts
// haproxy in the foreground, reloads it with zero lost connections (-sf old
// pids, -x stats socket), stops it cleanly, and tells systemd the truth.
// See README.md for the contract (arguments, environment, signals, exit codes).
//
// main only wires: it reads the command line and the environment, picks a
// command or the supervisor, and maps the outcome to an exit code. The work
// is in the packages under internal/ (see README "Architecture").
package main

import (
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/commands"
	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/earlysig"
	"haproxy-systemd-wrapper/wrapper/internal/handoff"
	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/listeners"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/settings"
	"haproxy-systemd-wrapper/wrapper/internal/supervisor"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

// signals receives the signals the supervisor acts on, caught since the
// earliest package initialisation (internal/earlysig).
var signals = earlysig.C

var handled = earlysig.Handled

func main() { os.Exit(run(os.Args)) }

// run dispatches the wrapper commands (internal/commands); everything else
// is haproxy's command line and starts the supervisor.
func run(argv []string) int {
	if len(argv) > 1 && commands.IsCommand(argv[1]) {
		return commands.Run(argv[1:], version)
	}
	return supervise(argv)
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
// legacy "exit, haproxy RC=N" (except in a -D parent, whose daemon logs it).
func supervise(argv []string) int {
	signal.Notify(signals, handled...)
	// A broken stderr (journald restarted, a -D parent's pipe closed) must
	// not kill the supervisor: SIGPIPE is caught and dropped, writes fail.
	signal.Notify(make(chan os.Signal, 1), unix.SIGPIPE)
	code, logExit := superviseSteps(argv)
	if logExit {
		logx.Noticef("exit, haproxy RC=%d", code)
	}
	logx.L.Flush(200 * time.Millisecond)
	return code
}

func superviseSteps(argv []string) (int, bool) {
	set, err := settings.Load()
	if err != nil {
		logx.Errorf("%v", err)
		return proc.ExitUsage, true
	}
	level, _ := logx.ParseLevel(set.LogLevel)
	logx.L.SetLevel(level)
	inv, err := haproxy.ParseInvocation(argv[1:], set.Config, set.PIDFile)
	if err != nil {
		logx.Errorf("%v", err)
		return proc.ExitUsage, true
	}
	rcv, resumed, herr := handoff.Receive()
	inherited := inheritSockets(resumed)
	self := proc.SelfPath()
	daemonPipe := proc.DaemonPipeFromEnv()
	if inv.Daemon && !resumed && daemonPipe == nil {
		signal.Reset(handled...)
		fds, names := make([]int, len(inherited)), make([]string, len(inherited))
		for i, k := range inherited {
			fds[i], names[i] = k.FD, k.Name
		}
		return proc.ForkDaemon(self, argv[1:], fds, names), false
	}
	if !resumed {
		for _, n := range inv.Notes {
			logx.Noticef("%s", n)
		}
	}
	cfg := supervisor.Config{
		Settings: set, Inv: inv, Bin: locateHAProxy(set.HAProxyBin, self), Self: self, Argv: argv,
		Signals: signals, DaemonPipe: daemonPipe, Version: version,
	}
	if !resumed {
		// The runtime folder is the wrapper's own, one instance's only.
		if err := proc.EnsurePrivateDir(set.RuntimeDir, "HAPROXY_WRAPPER_RUNTIME_DIR"); err != nil {
			logx.Errorf("%v", err)
			return proc.ExitUsage, true
		}
		lock, err := proc.Lock(set.RuntimeDir, "HAPROXY_WRAPPER_RUNTIME_DIR")
		if err != nil {
			logx.Errorf("%v", err)
			return proc.ExitUsage, true
		}
		cfg.Lock = lock
		ctl, err := control.Listen(set.ControlSocket)
		switch {
		case errors.Is(err, control.ErrInUse):
			logx.Errorf("%v", err)
			return proc.ExitUsage, true
		case err != nil:
			logx.Warningf("%v; 'reload' and 'status' commands unavailable, signals still work", err)
		}
		cfg.Control = ctl
		holder, err := listeners.Listen(filepath.Join(set.RuntimeDir, supervisor.HolderSocketName))
		if err != nil {
			logx.Warningf("%v: reloads take the listening sockets from the serving generation; no respawn or restart from held sockets", err)
		}
		cfg.Holder, cfg.Inherited = holder, inherited
	}
	if resumed {
		if herr != nil {
			// The children are ours, but their state is unknown: stop
			// them rather than leave them unsupervised.
			logx.Errorf("%v: stopping every haproxy child", herr)
			return stopOrphans(), true
		}
		s, err := supervisor.Resume(cfg, rcv)
		if err != nil {
			logx.Errorf("%v: stopping every haproxy child", err)
			return stopOrphans(), true
		}
		return s.Run(true), true
	}
	return supervisor.New(cfg).Run(false), true
}

// inheritSockets takes the sockets systemd passed to this process
// (LISTEN_FDS: its file descriptor store after a restart, or a .socket
// unit), with one line for each descriptor that is not a listening socket.
// The variables are removed, so that no later image or child reads them.
func inheritSockets(resumed bool) []listeners.Socket {
	pid, fds, names := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	daemonFDs, fromParent := os.LookupEnv(proc.EnvDaemonListen)
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", proc.EnvDaemonListen} {
		os.Unsetenv(k)
	}
	if resumed {
		return nil // an upgrade's image: the held sockets came with the hand-off
	}
	start := 3
	if fromParent {
		// The -D daemon: its parent passed them on after the pipe (fd 3).
		pid, fds, start = strconv.Itoa(os.Getpid()), daemonFDs, 4
	}
	n, nameList, err := listeners.ParseListenEnv(pid, fds, names, os.Getpid())
	if err != nil {
		logx.Warningf("%v", err)
		return nil
	}
	in := listeners.InheritFrom(start, n, nameList)
	for _, note := range in.Notes {
		logx.Warningf("%s", note)
	}
	return in.Sockets
}

// stopOrphans ends every child after an unreadable hand-off: SIGTERM, then
// wait for each.
func stopOrphans() int {
	kids := proc.ChildrenOf(os.Getpid())
	for _, p := range kids {
		_ = unix.Kill(p, unix.SIGTERM)
	}
	code := proc.ExitStartFailed
	for range kids {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(-1, &ws, 0, nil); err != nil {
			if errors.Is(err, unix.ECHILD) {
				break
			}
		}
	}
	return code
}
