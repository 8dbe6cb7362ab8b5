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
	in := listeners.FromEnv(resumed)
	for _, note := range in.Notes {
		logx.Warningf("%s", note)
	}
	inherited := in.Sockets
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
	cfg := supervisor.Config{
		Settings: set, Inv: inv, Bin: haproxy.Locate(set.HAProxyBin, self), Self: self, Argv: argv,
		Signals: signals, DaemonPipe: daemonPipe, Version: version,
	}
	if resumed {
		// An upgrade's new image: the old one held the lock, the control
		// and hand-over sockets, and handed them over with the state.
		var s *supervisor.Supervisor
		err := herr
		if err == nil {
			s, err = supervisor.Resume(cfg, rcv)
		}
		if err != nil {
			// The children are ours, but their state is unknown: stop
			// them rather than leave them unsupervised.
			logx.Errorf("%v: stopping every haproxy child", err)
			proc.StopChildren()
			return proc.ExitStartFailed, true
		}
		return s.Run(true), true
	}
	for _, n := range inv.Notes {
		logx.Noticef("%s", n)
	}
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
	return supervisor.New(cfg).Run(false), true
}
