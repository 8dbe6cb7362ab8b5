package haproxy

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// LegacyPIDFile is the C wrapper's default haproxy pid file.
const LegacyPIDFile = "/run/haproxy.pid"

// ErrUsage marks command-line and environment mistakes (exit code 64).
var ErrUsage = errors.New("usage")

// Invocation is the wrapper's reading of its haproxy arguments.
type Invocation struct {
	// Args are the user's haproxy arguments without the start-mode flags the
	// wrapper owns (-D, -Ds, -db) and without -p FILE, plus -f $CONFIG and
	// when they were implied by the environment.
	Args    []string
	PIDFile string   // from -p, else $PIDFILE, else /run/haproxy.pid
	Daemon  bool     // -D: fork for Type=forking
	Dropped []string // flags removed from the command line
	Notes   []string // one line per start-mode flag met: how it is treated
}

// haproxy options that take one value: a scan for -p/-f must skip the value,
// so that "-L -p" is not read as a pid file.
var valueOpts = map[string]bool{"-f": true, "-p": true, "-m": true, "-N": true, "-L": true,
	"-C": true, "-n": true, "-x": true, "-S": true}

// ParseInvocation reads the wrapper's arguments the way the legacy wrapper did
// (every argument is haproxy's) and applies CONFIG and PIDFILE.
func ParseInvocation(args []string, config, pidfile string) (Invocation, error) {
	inv := Invocation{}
	hasConfig := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-D":
			inv.Daemon = true
			inv.Dropped = append(inv.Dropped, a)
			inv.Notes = append(inv.Notes, "-D: used by the wrapper, which forks (for Type=forking); haproxy itself runs in the foreground")
			continue
		case a == "-Ds" || a == "-db":
			inv.Dropped = append(inv.Dropped, a)
			inv.Notes = append(inv.Notes, a+": ignored, haproxy always runs in the foreground under the wrapper")
			continue
		case a == "-S":
			// haproxy's master CLI: only in master-worker mode, which the
			// wrapper refuses (Debian's unit passes it in $EXTRAOPTS).
			v := ""
			if i+1 < len(args) {
				v = " " + args[i+1]
				i++
			}
			inv.Dropped = append(inv.Dropped, "-S"+v)
			inv.Notes = append(inv.Notes, "-S"+v+": ignored, the master CLI exists only in master-worker mode; the wrapper's status and reload commands replace it")
			continue
		case a == "-W" || a == "-Ws":
			return inv, fmt.Errorf("%w: %s (master-worker mode) would make haproxy its own supervisor: remove it, the wrapper supervises haproxy itself", ErrUsage, a)
		case a == "-sf" || a == "-st":
			return inv, fmt.Errorf("%w: %s is the wrapper's to set on reloads: remove it from the command line", ErrUsage, a)
		case a == "-x":
			return inv, fmt.Errorf("%w: -x is the wrapper's to set on reloads: set HAPROXY_STATS_SOCKET instead", ErrUsage)
		case a == "-p":
			if i+1 >= len(args) || args[i+1] == "" {
				return inv, fmt.Errorf("%w: -p needs a pid file path", ErrUsage)
			}
			inv.PIDFile = args[i+1]
			i++
			continue
		case a == "-f":
			if i+1 >= len(args) || args[i+1] == "" {
				return inv, fmt.Errorf("%w: -f needs a configuration file or folder (is $CONFIG empty in the unit?)", ErrUsage)
			}
			hasConfig = true
		}
		inv.Args = append(inv.Args, a)
		if valueOpts[a] && i+1 < len(args) {
			i++
			inv.Args = append(inv.Args, args[i])
		}
	}
	if !hasConfig {
		if config == "" {
			return inv, fmt.Errorf("%w: no haproxy configuration: pass -f FILE or set CONFIG", ErrUsage)
		}
		inv.Args = append(inv.Args, "-f", config)
	}
	if inv.PIDFile == "" {
		inv.PIDFile = pidfile
	}
	if inv.PIDFile == "" {
		inv.PIDFile = LegacyPIDFile
	}
	return inv, nil
}

// StartMode is how a haproxy generation is run and known to be ready.
type StartMode int

const (
	// ModeForeground (haproxy >= 1.8): "-db", one process per generation, the
	// wrapper writes the pid file; ready when the generation answers on its
	// private readiness socket.
	ModeForeground StartMode = iota
	// ModeLegacy (haproxy <= 1.7): "-Ds", haproxy writes the pid file; ready
	// when haproxy closes the HAPROXY_WRAPPER_FD pipe.
	ModeLegacy
)

func (m StartMode) String() string {
	if m == ModeLegacy {
		return "legacy -Ds"
	}
	return "foreground -db"
}

// ChildArgs builds a generation's command line (argv[1:]). oldPids are the
// live pids of the earlier generations; xSocket, when not empty, is passed
// with -x: where the new generation takes its listening sockets from (the
// wrapper's own hand-over socket, see package listeners).
//
// haproxy <= 1.7 (-Ds) gets -sf oldPids: haproxy tells them to stop once it
// has bound; -x does not exist there (those print their usage and exit), so
// it is never passed. haproxy >= 1.8 (-db) gets no -sf: the wrapper sends
// the old generations SIGUSR1 itself once the new one answers on its
// readiness socket (readyCfg) and holds a listener of its own, so that a
// generation that fails after its start, or that has no listener (which
// haproxy alone would refuse, were it not for the readiness socket), never
// touches the serving one.
func ChildArgs(mode StartMode, inv Invocation, oldPids []int, xSocket, readyCfg string) []string {
	out := append([]string(nil), inv.Args...)
	if mode == ModeLegacy {
		out = append(out, "-p", inv.PIDFile, "-Ds")
		if len(oldPids) > 0 {
			out = append(out, "-sf")
			for _, p := range oldPids {
				out = append(out, strconv.Itoa(p))
			}
		}
		return out
	}
	out = append(out, "-f", readyCfg, "-db")
	if xSocket != "" {
		out = append(out, "-x", xSocket)
	}
	return out
}

// CheckArgs builds the configuration check's command line (argv[1:]). It is
// run without -q: haproxy -c -q prints nothing on a bad config.
func CheckArgs(inv Invocation) []string {
	return append(append([]string(nil), inv.Args...), "-c")
}

var versionRe = regexp.MustCompile(`HA-?Proxy version (\d+)\.(\d+)(\S*)`)

// ParseVersion reads the output of "haproxy -v".
func ParseVersion(out string) (major, minor int, full string, err error) {
	m := versionRe.FindStringSubmatch(out)
	if m == nil {
		first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
		if len(first) > 80 {
			first = first[:80]
		}
		return 0, 0, "", fmt.Errorf("no version in 'haproxy -v' output %q", first)
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, m[1] + "." + m[2] + m[3], nil
}

// LegacyPipe tells whether a haproxy <= 1.7 (full version, e.g. "1.5.18")
// closes the HAPROXY_WRAPPER_FD pipe once started: 1.7.0 on, and 1.5.19 on
// in the 1.5 branch (SPEC §7). 1.5.0-1.5.18 and 1.6.x never touch it: their
// readiness is their pid file.
func LegacyPipe(full string) bool {
	m := legacyRe.FindStringSubmatch(full)
	if m == nil {
		return true
	}
	minor, _ := strconv.Atoi(m[1])
	patch, _ := strconv.Atoi(m[2])
	switch minor {
	case 5:
		return patch >= 19
	case 6:
		return false
	}
	return minor >= 7
}

var legacyRe = regexp.MustCompile(`^1\.(\d+)(?:\.(\d+))?`)

// ModeFor chooses the start mode by haproxy's version.
func ModeFor(major, minor int) StartMode {
	if major < 1 || (major == 1 && minor <= 7) {
		return ModeLegacy
	}
	return ModeForeground
}
