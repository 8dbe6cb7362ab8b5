// Package earlysig catches the wrapper's signals as early as a Go program
// can: in the first package initialised after os/signal, before the other
// packages' initialisation and before main. A signal the Go runtime gets
// before a handler exists is fatal (SIGTERM, SIGINT, SIGHUP) or dropped
// (SIGUSR1, SIGUSR2): the earlier the handlers, the smaller that window
// after a launch or an upgrade's re-exec. Only os, os/signal, strings and
// syscall are imported, to be initialised early.
package earlysig

import (
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Handled are the signals the supervisor acts on.
var Handled = []os.Signal{syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGABRT}

// MetaFlags are the flag-like spellings of the wrapper's own commands, with
// the command each one means: a first argument among them is a command,
// never a haproxy option. The one list: the supervisor's signal handlers
// (here), main's dispatch and the commands read it.
var MetaFlags = map[string]string{
	"--help": "help", "-help": "help", "-h": "help",
	"--version": "version", "-version": "version",
}

// C receives them, from initialisation on, when the command line starts the
// supervisor. A wrapper command (reload, status...) keeps the default
// dispositions: Ctrl-C ends it.
var C = make(chan os.Signal, 64)

func init() {
	if Supervising(os.Args) {
		signal.Notify(C, Handled...)
	}
}

// Supervising tells whether argv starts the supervisor (haproxy arguments)
// rather than a wrapper command. A test binary's own flags (-test.*) are
// neither.
func Supervising(argv []string) bool {
	if len(argv) < 2 {
		return true
	}
	a := argv[1]
	if _, meta := MetaFlags[a]; meta {
		return false
	}
	return strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "-test.")
}
