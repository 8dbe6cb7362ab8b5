// Package commands is the client side of the wrapper's own commands:
// reload, status, last-reload, version, help, and the two an upgrade uses
// (handoff-version, the sentinel). main hands it every command line whose
// first argument is not a haproxy option (IsCommand).
//
// The path of a command, file by file:
//   - commands.go, Run: the command and its flags (--unit NAME, --json,
//     --prometheus); a mistake exits 64 with one line and the usage.
//   - find.go, locate: which wrapper it talks to: --unit NAME, else the
//     environment (HAPROXY_WRAPPER_CONTROL_SOCKET, HAPROXY_WRAPPER_RUNTIME_DIR,
//     $RUNTIME_DIRECTORY as ExecReload= has it, CONFIG), else every wrapper
//     found under settings.RuntimeBase (discover).
//   - reload.go and status.go: the request over the control socket
//     (internal/control: Ask, Peer), the answer printed, the exit code.
package commands

import (
	"fmt"
	"os"
	"strings"

	"haproxy-systemd-wrapper/wrapper/internal/earlysig"
	"haproxy-systemd-wrapper/wrapper/internal/handoff"
	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/settings"
)

// Usage is the one-line summary printed after a usage error.
const Usage = "usage: haproxy-systemd-wrapper [haproxy arguments...] | reload [--unit NAME] | status [--unit NAME] [--json|--prometheus] | last-reload [--unit NAME] | version | help\n"

// IsCommand tells whether a first argument names a wrapper command rather
// than starting haproxy's arguments: a word, or one of earlysig.MetaFlags.
func IsCommand(first string) bool {
	if _, meta := earlysig.MetaFlags[first]; meta {
		return true
	}
	return !strings.HasPrefix(first, "-")
}

// say prints one line on stderr, prefixed and bounded (logx.MaxLine).
func say(format string, a ...any) {
	msg := strings.ReplaceAll(strings.TrimRight(fmt.Sprintf(format, a...), "\n"), "\n", " | ")
	fmt.Fprintln(os.Stderr, logx.Bound("haproxy-systemd-wrapper: "+msg, 0))
}

func usageError(format string, a ...any) int {
	say(format, a...)
	fmt.Fprint(os.Stderr, Usage)
	return proc.ExitUsage
}

// options are a command's flags.
type options struct {
	unit   string // --unit NAME: the wrapper's runtime folder under settings.RuntimeBase
	format string // status: "", "--json" or "--prometheus"
}

// parseFlags reads the flags of reload, status and last-reload.
func parseFlags(cmd string, args []string) (options, error) {
	var o options
	takes := "--unit NAME"
	if cmd == "status" {
		takes = "--unit NAME and one of --json or --prometheus"
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--unit" || strings.HasPrefix(a, "--unit="):
			v, ok := strings.CutPrefix(a, "--unit=")
			if !ok {
				if i+1 >= len(args) {
					return o, fmt.Errorf("%s: --unit needs a name (haproxy, haproxy@edge, ...)", cmd)
				}
				i++
				v = args[i]
			}
			if o.unit != "" {
				return o, fmt.Errorf("%s: --unit given twice", cmd)
			}
			name, err := unitFolder(v)
			if err != nil {
				return o, fmt.Errorf("%s: %w", cmd, err)
			}
			o.unit = name
		case cmd == "status" && (a == "--json" || a == "--prometheus") && o.format == "":
			o.format = a
		default:
			return o, fmt.Errorf("%s takes only %s, got %q", cmd, takes, strings.Join(args, " "))
		}
	}
	return o, nil
}

// Run runs the wrapper command args[0] with its arguments and returns the
// exit code. version is the wrapper's (main.version).
func Run(args []string, version string) int {
	name, rest := args[0], args[1:]
	cmd := name
	if c, meta := earlysig.MetaFlags[name]; meta {
		cmd = c
	}
	switch cmd {
	case "version", "help":
		if len(rest) > 0 {
			return usageError("%s takes no argument, got %q", name, rest[0])
		}
		if cmd == "version" {
			fmt.Printf("haproxy-systemd-wrapper %s\n", version)
		} else {
			fmt.Print(settings.HelpText())
		}
		return proc.ExitOK
	case handoff.ProbeCommand:
		fmt.Print(handoff.ProbeAnswer())
		return proc.ExitOK
	case handoff.SentinelCommand:
		return handoff.RunSentinel(rest)
	case "reload", "status", "last-reload":
	default:
		return usageError("unknown command %q: use reload, status, last-reload, version or help (haproxy options start with -)", name)
	}
	o, err := parseFlags(cmd, rest)
	if err != nil {
		return usageError("%v", err)
	}
	where, err := locate(o.unit, settings.RuntimeBase, os.LookupEnv, settings.Load)
	if err != nil {
		say("%v", err)
		return proc.ExitUsage
	}
	switch cmd {
	case "reload":
		return reloadCommand(where)
	case "last-reload":
		return lastReloadCommand(where)
	}
	return statusCommand(where, o.format)
}
