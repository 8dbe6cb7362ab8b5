// Package settings reads the wrapper's settings from the environment
// (envconfig, explicit tags, no prefix) and checks them.
package settings

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"haproxy-systemd-wrapper/wrapper/internal/logx"
)

// Settings is everything the wrapper reads from its environment. Every field
// has an explicit envconfig tag and no prefix, so the variable names are the
// ones documented in the README and in `haproxy-systemd-wrapper --help`.
type Settings struct {
	// Legacy and unit-file variables.
	Config      string `envconfig:"CONFIG" desc:"haproxy configuration file or directory; adds -f $CONFIG when the arguments carry no -f"`
	PIDFile     string `envconfig:"PIDFILE" desc:"haproxy's pid file; adds -p $PIDFILE when the arguments carry no -p (legacy default /run/haproxy.pid)"`
	StatsSocket string `envconfig:"HAPROXY_STATS_SOCKET" desc:"admin stats socket declared with 'expose-fd listeners': passed as -x on reloads (zero-loss socket handover); with haproxy <= 1.7 also read for status and watchdog"`

	// The wrapper's own settings.
	HAProxyBin    string        `envconfig:"HAPROXY_BIN" desc:"haproxy binary (default: 'haproxy' next to the wrapper, X for X-systemd-wrapper, else /usr/sbin/haproxy)"`
	ControlSocket string        `envconfig:"HAPROXY_WRAPPER_CONTROL_SOCKET" desc:"unix socket (mode 0600) used by 'haproxy-systemd-wrapper reload' and 'status' (default: control.sock in the runtime folder)"`
	WrapperPID    string        `envconfig:"HAPROXY_WRAPPER_PIDFILE" default:"/run/haproxy-systemd-wrapper.pid" desc:"the wrapper's own pid file, written in -D (Type=forking) mode for PIDFile="`
	RuntimeDir    string        `envconfig:"HAPROXY_WRAPPER_RUNTIME_DIR" desc:"the wrapper's private folder (mode 0700, its own; refused when a symlink, someone else's, or writable by others): readiness sockets, control socket, lock (default: $RUNTIME_DIRECTORY under systemd's RuntimeDirectory=, else /run/haproxy-systemd-wrapper/INSTANCE, INSTANCE named after $CONFIG)"`
	StartTimeout  time.Duration `envconfig:"HAPROXY_WRAPPER_START_TIMEOUT" default:"60s" desc:"how long a new haproxy generation may take to serve before the start or reload counts as failed"`
	StopTimeout   time.Duration `envconfig:"HAPROXY_WRAPPER_STOP_TIMEOUT" default:"0s" desc:"after a stop signal, SIGKILL haproxy processes still alive after this long (0: wait, and let systemd's TimeoutStopSec= act)"`
	StatusPeriod  time.Duration `envconfig:"HAPROXY_WRAPPER_STATUS_INTERVAL" default:"5s" desc:"how often the STATUS= line is refreshed with live figures"`
	LogLevel      string        `envconfig:"HAPROXY_WRAPPER_LOG_LEVEL" default:"info" desc:"err, warning, notice, info or debug"`
	CheckConfig   bool          `envconfig:"HAPROXY_WRAPPER_CHECK" default:"false" desc:"also run 'haproxy -c' before each start and reload (a second parse of the configuration; off by default: the new generation's own load is the check, and a failed one never touches the serving generation)"`
	MaxDraining   int           `envconfig:"HAPROXY_WRAPPER_MAX_DRAINING" default:"50" desc:"most old generations left draining; past it the oldest gets SIGTERM (like haproxy's mworker-max-reloads)"`
	MaxDrainAge   time.Duration `envconfig:"HAPROXY_WRAPPER_MAX_DRAIN_AGE" default:"0s" desc:"an old generation still draining after this long gets SIGTERM (0: no limit; like hard-stop-after)"`
	RespawnLimit  int           `envconfig:"HAPROXY_WRAPPER_RESPAWN_LIMIT" default:"3" desc:"haproxy >= 1.8: when the serving haproxy dies on its own (killed by a signal or a non-zero exit), start a new one at once from the held listening sockets, at most this many times a minute; past it (or 0) the wrapper exits with haproxy's status, for systemd's Restart="`
	StopGrace     time.Duration `envconfig:"HAPROXY_WRAPPER_STOP_GRACE" default:"0s" desc:"haproxy >= 1.8: on SIGTERM/SIGINT, soft-stop haproxy first (requests in flight finish, as on SIGUSR1) and send the stop signal only after this long (0: at once, as the legacy wrapper; the units set 10s, so that a restart with sockets kept in systemd's store loses nothing)"`
	VersionCache  string        `envconfig:"HAPROXY_WRAPPER_VERSION_CACHE" desc:"remember what 'haproxy -v' says of each haproxy binary (by path, inode, size and times) in this file, so that a restart starts haproxy without running 'haproxy -v' first (unset: always run it; the units set /run/haproxy-systemd-wrapper/haproxy-versions). Read only when owned by the wrapper's user and writable by nobody else"`
	MetricsFile   string        `envconfig:"HAPROXY_WRAPPER_METRICS_FILE" desc:"write the Prometheus metrics of 'status --prometheus' to this file, atomically, after every change and every HAPROXY_WRAPPER_STATUS_INTERVAL (for node_exporter's textfile collector; name it *.prom)"`

	// systemd's variables (read, never passed on to haproxy).
	NotifySocket string `envconfig:"NOTIFY_SOCKET" desc:"set by systemd for Type=notify: path or @abstract"`
	WatchdogUSec int64  `envconfig:"WATCHDOG_USEC" desc:"set by systemd when WatchdogSec= is set"`
	WatchdogPID  int    `envconfig:"WATCHDOG_PID" desc:"set by systemd: the pid the watchdog is meant for"`
}

// Load reads the environment. envconfig accepts empty values; the wrapper
// does not where a value is needed, and says which variable is wrong. Every
// path setting is made absolute (relative to the working directory), so that
// haproxy and a re-executed wrapper read the same paths.
func Load() (Settings, error) {
	var s Settings
	if err := envconfig.Process("", &s); err != nil {
		return s, fmt.Errorf("environment: %w", err)
	}
	if s.RuntimeDir == "" {
		s.RuntimeDir = DefaultRuntimeDir(os.Getenv("RUNTIME_DIRECTORY"), s.Config)
	}
	if err := s.absolute(); err != nil {
		return s, err
	}
	if s.ControlSocket == "" {
		s.ControlSocket = filepath.Join(s.RuntimeDir, "control.sock")
	}
	return s, s.Validate(os.LookupEnv)
}

// RuntimeBase is the parent of the default per-instance runtime folders.
const RuntimeBase = "/run/haproxy-systemd-wrapper"

// DefaultRuntimeDir is the runtime folder when none is set: systemd's
// $RUNTIME_DIRECTORY (its first entry), else one per instance under
// RuntimeBase, named after the configuration path, so that two instances
// that differ only by CONFIG never share a folder, a control socket or a
// readiness socket.
func DefaultRuntimeDir(runtimeDirectory, config string) string {
	if first, _, _ := strings.Cut(runtimeDirectory, ":"); first != "" {
		return first
	}
	return filepath.Join(RuntimeBase, Instance(config))
}

// Instance names an instance after its configuration path: the file name
// (letters, digits, '.', '-', '_' kept) and a short hash of the absolute
// path; "default" without CONFIG.
func Instance(config string) string {
	if config == "" {
		return "default"
	}
	if abs, err := filepath.Abs(config); err == nil {
		config = abs
	}
	name := []byte(filepath.Base(config))
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			name[i] = '_'
		}
	}
	if len(name) > 32 {
		name = name[:32]
	}
	sum := sha256.Sum256([]byte(config))
	return fmt.Sprintf("%s-%x", name, sum[:4])
}

// absolute makes every path setting absolute.
func (s *Settings) absolute() error {
	for _, p := range []struct {
		name string
		v    *string
	}{{"CONFIG", &s.Config}, {"PIDFILE", &s.PIDFile}, {"HAPROXY_STATS_SOCKET", &s.StatsSocket},
		{"HAPROXY_BIN", &s.HAProxyBin}, {"HAPROXY_WRAPPER_CONTROL_SOCKET", &s.ControlSocket},
		{"HAPROXY_WRAPPER_PIDFILE", &s.WrapperPID}, {"HAPROXY_WRAPPER_RUNTIME_DIR", &s.RuntimeDir},
		{"HAPROXY_WRAPPER_METRICS_FILE", &s.MetricsFile}, {"HAPROXY_WRAPPER_VERSION_CACHE", &s.VersionCache}} {
		if *p.v == "" || filepath.IsAbs(*p.v) {
			continue
		}
		abs, err := filepath.Abs(*p.v)
		if err != nil {
			return fmt.Errorf("%s=%s: %w: give an absolute path", p.name, *p.v, err)
		}
		*p.v = abs
	}
	return nil
}

// Validate rejects values that are set but unusable. lookup tells whether a
// variable is present at all (so CONFIG="" is an error, CONFIG unset is not).
func (s Settings) Validate(lookup func(string) (string, bool)) error {
	for _, name := range []string{"CONFIG", "PIDFILE", "HAPROXY_STATS_SOCKET", "HAPROXY_BIN",
		"HAPROXY_WRAPPER_CONTROL_SOCKET", "HAPROXY_WRAPPER_PIDFILE", "HAPROXY_WRAPPER_RUNTIME_DIR", "HAPROXY_WRAPPER_METRICS_FILE", "HAPROXY_WRAPPER_VERSION_CACHE"} {
		if v, ok := lookup(name); ok && strings.TrimSpace(v) == "" {
			return fmt.Errorf("%s is set but empty: give it a value or unset it", name)
		}
	}
	for name, v := range map[string]string{
		"HAPROXY_WRAPPER_CONTROL_SOCKET": s.ControlSocket,
		"HAPROXY_STATS_SOCKET":           s.StatsSocket,
	} {
		if len(v) > 107 {
			return fmt.Errorf("%s is %d bytes long: unix socket paths are limited to 107 bytes, choose a shorter path", name, len(v))
		}
	}
	if len(filepath.Join(s.RuntimeDir, "gen-999999999.sock")) > 107 {
		return fmt.Errorf("HAPROXY_WRAPPER_RUNTIME_DIR is too long for unix socket paths (%d bytes): choose a shorter folder", len(s.RuntimeDir))
	}
	if s.StartTimeout <= 0 {
		return fmt.Errorf("HAPROXY_WRAPPER_START_TIMEOUT=%s must be positive, e.g. 60s", s.StartTimeout)
	}
	if s.StopTimeout < 0 {
		return fmt.Errorf("HAPROXY_WRAPPER_STOP_TIMEOUT=%s must not be negative", s.StopTimeout)
	}
	if s.MaxDraining < 1 {
		return fmt.Errorf("HAPROXY_WRAPPER_MAX_DRAINING=%d must be at least 1, e.g. 50", s.MaxDraining)
	}
	if s.RespawnLimit < 0 {
		return fmt.Errorf("HAPROXY_WRAPPER_RESPAWN_LIMIT=%d must not be negative (0 turns respawning off)", s.RespawnLimit)
	}
	if s.StopGrace < 0 {
		return fmt.Errorf("HAPROXY_WRAPPER_STOP_GRACE=%s must not be negative (0: stop at once)", s.StopGrace)
	}
	if s.MaxDrainAge < 0 {
		return fmt.Errorf("HAPROXY_WRAPPER_MAX_DRAIN_AGE=%s must not be negative (0 means no limit)", s.MaxDrainAge)
	}
	if s.StatusPeriod <= 0 {
		return fmt.Errorf("HAPROXY_WRAPPER_STATUS_INTERVAL=%s must be positive, e.g. 5s", s.StatusPeriod)
	}
	if _, ok := logx.ParseLevel(s.LogLevel); !ok {
		return fmt.Errorf("HAPROXY_WRAPPER_LOG_LEVEL=%q is not a level: use err, warning, notice, info or debug", s.LogLevel)
	}
	return nil
}

// helpText lists every variable with its default, generated from the tags so
// it cannot drift from what is read.
func HelpText() string {
	var b strings.Builder
	b.WriteString(`Usage: haproxy-systemd-wrapper [haproxy arguments...]
       haproxy-systemd-wrapper reload     ask the running wrapper to reload, wait for the outcome
       haproxy-systemd-wrapper status [--json | --prometheus]
       haproxy-systemd-wrapper last-reload  exit 1 when the last reload failed (for ExecReloadPost=)
       haproxy-systemd-wrapper version | --version
       haproxy-systemd-wrapper help | --help

Runs haproxy in the foreground, reloads it on SIGUSR2/SIGHUP with -sf and -x
(zero lost connections), stops it on SIGTERM/SIGINT, soft-stops it on SIGUSR1,
and talks to systemd (Type=notify, Type=forking with -D, or Type=simple).
Every argument is passed to haproxy, except the start-mode flags the wrapper
owns: -D (the wrapper forks, for Type=forking), -Ds and -db (ignored: haproxy
always runs in the foreground); -W and -Ws are refused.

Environment:
`)
	for _, v := range Vars() {
		def := v.Def
		if def == "" {
			def = "unset"
		}
		fmt.Fprintf(&b, "  %-32s %s\n  %-32s (default: %s)\n", v.Name, v.Desc, "", def)
	}
	return b.String()
}

// Var is one environment variable: name, default, description.
type Var struct{ Name, Def, Desc string }

func Vars() []Var {
	t := reflect.TypeOf(Settings{})
	out := make([]Var, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		out = append(out, Var{Name: f.Tag.Get("envconfig"), Def: f.Tag.Get("default"), Desc: f.Tag.Get("desc")})
	}
	return out
}
