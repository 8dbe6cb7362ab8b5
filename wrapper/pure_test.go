package main

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseInvocation(t *testing.T) {
	tests := []struct {
		name            string
		args            []string
		config, pidfile string
		want            Invocation
		wantErr         string
	}{
		{"legacy unit line", []string{"-f", "/etc/haproxy/haproxy.cfg", "-p", "/run/haproxy.pid"}, "", "",
			Invocation{Args: []string{"-f", "/etc/haproxy/haproxy.cfg"}, PIDFile: "/run/haproxy.pid"}, ""},
		{"CONFIG and PIDFILE fill in", nil, "/c.cfg", "/p.pid",
			Invocation{Args: []string{"-f", "/c.cfg"}, PIDFile: "/p.pid"}, ""},
		{"arguments win over env", []string{"-f", "/a.cfg", "-p", "/a.pid"}, "/c.cfg", "/p.pid",
			Invocation{Args: []string{"-f", "/a.cfg"}, PIDFile: "/a.pid"}, ""},
		{"legacy pid file default", []string{"-f", "/a.cfg"}, "", "",
			Invocation{Args: []string{"-f", "/a.cfg"}, PIDFile: "/run/haproxy.pid"}, ""},
		{"-D forks, -Ds and -db are dropped", []string{"-D", "-Ds", "-db", "-f", "/a.cfg"}, "", "",
			Invocation{Args: []string{"-f", "/a.cfg"}, PIDFile: "/run/haproxy.pid", Daemon: true, Dropped: []string{"-D", "-Ds", "-db"}}, ""},
		{"value of -L is not a -p", []string{"-L", "-p", "-f", "/a.cfg"}, "", "",
			Invocation{Args: []string{"-L", "-p", "-f", "/a.cfg"}, PIDFile: "/run/haproxy.pid"}, ""},
		{"other options pass", []string{"-f", "/a.cfg", "-f", "/conf.d", "-q", "-dV"}, "", "",
			Invocation{Args: []string{"-f", "/a.cfg", "-f", "/conf.d", "-q", "-dV"}, PIDFile: "/run/haproxy.pid"}, ""},
		{"-Ws refused", []string{"-Ws", "-f", "/a.cfg"}, "", "", Invocation{}, "-Ws (master-worker mode)"},
		{"-W refused", []string{"-W"}, "/c", "", Invocation{}, "-W (master-worker mode)"},
		{"-sf refused", []string{"-f", "/a", "-sf", "12"}, "", "", Invocation{}, "-sf is the wrapper's"},
		{"-x refused", []string{"-x", "/s"}, "/c", "", Invocation{}, "set HAPROXY_STATS_SOCKET"},
		{"no config", nil, "", "", Invocation{}, "pass -f FILE or set CONFIG"},
		{"empty -f (unset $CONFIG in the unit)", []string{"-f", "", "-p", "/p"}, "", "", Invocation{}, "-f needs"},
		{"-p without value", []string{"-f", "/a", "-p"}, "", "", Invocation{}, "-p needs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseInvocation(tt.args, tt.config, tt.pidfile)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, errUsage) {
					t.Fatalf("err = %v, want a usage error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestChildArgs(t *testing.T) {
	inv := Invocation{Args: []string{"-f", "/a.cfg"}, PIDFile: "/run/haproxy.pid"}
	tests := []struct {
		name  string
		mode  StartMode
		old   []int
		stats string
		want  string
	}{
		{"legacy first start", ModeLegacy, nil, "/s.sock", "-f /a.cfg -p /run/haproxy.pid -Ds"},
		{"legacy reload", ModeLegacy, []int{10, 11}, "/s.sock", "-f /a.cfg -p /run/haproxy.pid -Ds -sf 10 11 -x /s.sock"},
		{"legacy reload without stats socket", ModeLegacy, []int{10}, "", "-f /a.cfg -p /run/haproxy.pid -Ds -sf 10"},
		{"foreground first start", ModeForeground, nil, "/s.sock", "-f /a.cfg -f /rt/gen-1.cfg -db"},
		{"foreground reload", ModeForeground, []int{7, 9}, "/s.sock", "-f /a.cfg -f /rt/gen-1.cfg -db -sf 7 9 -x /s.sock"},
	}
	for _, tt := range tests {
		got := strings.Join(childArgs(tt.mode, inv, tt.old, tt.stats, "/rt/gen-1.cfg"), " ")
		if got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	if got, want := strings.Join(checkArgs(inv), " "), "-f /a.cfg -c"; got != want {
		t.Errorf("checkArgs: got %q, want %q", got, want)
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		out          string
		major, minor int
		full         string
		mode         StartMode
		err          bool
	}{
		{"HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/\n", 2, 6, "2.6.12-1+deb12u4", ModeForeground, false},
		{"HA-Proxy version 1.7.11 2018/04/30\n", 1, 7, "1.7.11", ModeLegacy, false},
		{"HA-Proxy version 1.5.18 2016/05/10\n", 1, 5, "1.5.18", ModeLegacy, false},
		{"HA-Proxy version 1.8.30 2021/04/12\n", 1, 8, "1.8.30", ModeForeground, false},
		{"HAProxy version 3.1.0-1 2024/11/26\n", 3, 1, "3.1.0-1", ModeForeground, false},
		{"Segmentation fault\n", 0, 0, "", ModeForeground, true},
		{"", 0, 0, "", ModeForeground, true},
	}
	for _, tt := range tests {
		major, minor, full, err := parseVersion(tt.out)
		if (err != nil) != tt.err {
			t.Errorf("%q: err = %v", tt.out, err)
			continue
		}
		if tt.err {
			continue
		}
		if major != tt.major || minor != tt.minor || full != tt.full || modeFor(major, minor) != tt.mode {
			t.Errorf("%q: got %d.%d %q %v, want %d.%d %q %v", tt.out, major, minor, full, modeFor(major, minor), tt.major, tt.minor, tt.full, tt.mode)
		}
	}
}

func TestEnvEditingReplacesKeys(t *testing.T) {
	env := []string{"A=1", "NOTIFY_SOCKET=/run/systemd/notify", "B=2", "A=3", "WATCHDOG_USEC=100", "WATCHDOG_PID=5", "PATH=/bin"}
	if got, want := setEnv(env, "A", "9"), []string{"NOTIFY_SOCKET=/run/systemd/notify", "B=2", "WATCHDOG_USEC=100", "WATCHDOG_PID=5", "PATH=/bin", "A=9"}; !reflect.DeepEqual(got, want) {
		t.Errorf("setEnv: got %v, want %v", got, want)
	}
	if got, want := childEnv(env), []string{"A=1", "B=2", "A=3", "PATH=/bin"}; !reflect.DeepEqual(got, want) {
		t.Errorf("childEnv: got %v, want %v", got, want)
	}
	if got, want := unsetEnv([]string{"AB=1", "A=2"}, "A"), []string{"AB=1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("unsetEnv matches a prefix: got %v, want %v", got, want)
	}
}

func TestParsePIDs(t *testing.T) {
	tests := []struct {
		text    string
		pids    []int
		garbage []string
	}{
		{"123\n", []int{123}, nil},
		{"123\n456\n123\n", []int{123, 456}, nil},
		{"", nil, nil},
		{"  \n\t", nil, nil},
		{"12abc\n-5\n0\n1\n99999999999\n$(reboot)\n77", []int{77}, []string{"12abc", "-5", "0", "1", "99999999999", "$(reboot)"}},
	}
	for _, tt := range tests {
		pids, garbage := parsePIDs(tt.text)
		if !reflect.DeepEqual(pids, tt.pids) || !reflect.DeepEqual(garbage, tt.garbage) {
			t.Errorf("%q: got %v %v, want %v %v", tt.text, pids, garbage, tt.pids, tt.garbage)
		}
	}
}

func FuzzParsePIDs(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/pidfile/*.txt")
	if len(seeds) == 0 {
		f.Fatal("no seeds in ../testdata/pidfile")
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, text string) {
		pids, garbage := parsePIDs(text)
		for _, p := range pids {
			if p <= 1 || p > 1<<22 {
				t.Fatalf("pid %d out of range from %q", p, text)
			}
		}
		if len(pids)+len(garbage) > len(strings.Fields(text)) {
			t.Fatalf("more results than fields in %q", text)
		}
	})
}

func TestWritePIDFileAtomicAndReplacesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "haproxy.pid")
	if err := os.Symlink(victim, p); err != nil {
		t.Fatal(err)
	}
	if err := writePIDFile(p, []int{42, 43}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "42\n43\n" {
		t.Fatalf("pid file = %q", b)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Fatalf("the symlink's target was written: %q", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("temporary files left: %v", ents)
	}
	err := writePIDFile(filepath.Join(dir, "missing", "x.pid"), []int{1})
	if err == nil || !strings.Contains(err.Error(), "write pid file") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unwritable folder: err = %v", err)
	}
}

func TestFilterOwn(t *testing.T) {
	mine, foreign := filterOwn([]int{5, 6, 7}, func(p int) bool { return p != 6 })
	if !reflect.DeepEqual(mine, []int{5, 7}) || !reflect.DeepEqual(foreign, []int{6}) {
		t.Fatalf("got %v %v", mine, foreign)
	}
}

func TestExitCodes(t *testing.T) {
	exited := func(c int) unix.WaitStatus { return unix.WaitStatus(c << 8) }
	signaled := func(s unix.Signal) unix.WaitStatus { return unix.WaitStatus(s) }
	tests := []struct {
		name      string
		ws        unix.WaitStatus
		forwarded unix.Signal
		status    int
		stop      int
	}{
		{"exit 0", exited(0), unix.SIGTERM, 0, 0},
		{"exit 1", exited(1), unix.SIGTERM, 1, 1},
		{"killed by the forwarded SIGTERM", signaled(unix.SIGTERM), unix.SIGTERM, 143, 0},
		{"killed by the forwarded SIGINT", signaled(unix.SIGINT), unix.SIGINT, 130, 0},
		{"SIGKILL", signaled(unix.SIGKILL), unix.SIGTERM, 137, 137},
		{"SIGTERM when SIGUSR1 was forwarded", signaled(unix.SIGTERM), unix.SIGUSR1, 143, 143},
	}
	for _, tt := range tests {
		if got := statusCode(tt.ws); got != tt.status {
			t.Errorf("%s: statusCode = %d, want %d", tt.name, got, tt.status)
		}
		if got := stopCode(tt.ws, tt.forwarded); got != tt.stop {
			t.Errorf("%s: stopCode = %d, want %d", tt.name, got, tt.stop)
		}
	}
}

func TestSignalActions(t *testing.T) {
	want := map[unix.Signal]action{unix.SIGUSR2: actionReload, unix.SIGHUP: actionReload, unix.SIGTERM: actionStop,
		unix.SIGINT: actionStop, unix.SIGUSR1: actionGracefulStop, unix.SIGABRT: actionAbort, unix.SIGCHLD: actionNone, unix.SIGQUIT: actionNone}
	for sig, a := range want {
		if got := signalAction(sig); got != a {
			t.Errorf("%s: got %v, want %v", unix.SignalName(sig), got, a)
		}
	}
}

func TestLogLineFormat(t *testing.T) {
	if got, want := formatLogLine(prioNotice, "exit, haproxy RC=0"), "<5>haproxy-systemd-wrapper: exit, haproxy RC=0\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := formatLogLine(prioErr, "a\nb\n"), "<3>haproxy-systemd-wrapper: a | b\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestHAProxyLinePriority(t *testing.T) {
	tests := []struct{ in, want string }{
		{"[ALERT]    (1) : config : bad\n", "<3>[ALERT]    (1) : config : bad\n"},
		{"[WARNING]  (1) : Proxy x stopped", "<4>[WARNING]  (1) : Proxy x stopped\n"},
		{"[NOTICE]   (1) : haproxy version is 2.6", "<5>[NOTICE]   (1) : haproxy version is 2.6\n"},
		{"plain\n", "plain\n"},
	}
	for _, tt := range tests {
		if got := haproxyLine(tt.in); got != tt.want {
			t.Errorf("haproxyLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSummarizeCheck(t *testing.T) {
	out := "[NOTICE] x\n[ALERT]    (1) : config : parsing [a.cfg:3] : unknown keyword 'foo'\n[ALERT]    (1) : config : Fatal errors found\n"
	if got, want := summarizeCheck(out), "[ALERT]    (1) : config : parsing [a.cfg:3] : unknown keyword 'foo' | [ALERT]    (1) : config : Fatal errors found"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := summarizeCheck(""); got != "no output" {
		t.Errorf("empty: got %q", got)
	}
}

func TestSettingsValidation(t *testing.T) {
	base := Settings{ControlSocket: "/run/x.sock", RuntimeDir: "/run/x", StartTimeout: 1e9, StatusPeriod: 1e9, LogLevel: "info"}
	lookup := func(env map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	}
	if err := base.validate(lookup(nil)); err != nil {
		t.Fatalf("valid settings: %v", err)
	}
	if err := base.validate(lookup(map[string]string{"CONFIG": ""})); err == nil || !strings.Contains(err.Error(), "CONFIG is set but empty") {
		t.Errorf("empty CONFIG: %v", err)
	}
	long := base
	long.ControlSocket = "/" + strings.Repeat("x", 200)
	if err := long.validate(lookup(nil)); err == nil || !strings.Contains(err.Error(), "HAPROXY_WRAPPER_CONTROL_SOCKET") {
		t.Errorf("long socket path: %v", err)
	}
	bad := base
	bad.LogLevel = "loud"
	if err := bad.validate(lookup(nil)); err == nil || !strings.Contains(err.Error(), "HAPROXY_WRAPPER_LOG_LEVEL") {
		t.Errorf("bad level: %v", err)
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	h := helpText()
	for _, v := range settingsVars() {
		if v.name == "" || !strings.Contains(h, v.name) {
			t.Errorf("help lacks %q", v.name)
		}
	}
	for _, want := range []string{"HAPROXY_STATS_SOCKET", "(default: /run/haproxy-systemd-wrapper.sock)", "(default: 60s)"} {
		if !strings.Contains(h, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestLocateHAProxy(t *testing.T) {
	dir := t.TempDir()
	if got := locateHAProxy("/opt/h", filepath.Join(dir, "haproxy-systemd-wrapper")); got != "/opt/h" {
		t.Errorf("override: %s", got)
	}
	if got := locateHAProxy("", filepath.Join(dir, "haproxy-systemd-wrapper")); got != "/usr/sbin/haproxy" {
		t.Errorf("fallback: %s", got)
	}
	os.WriteFile(filepath.Join(dir, "haproxy"), nil, 0o755)
	os.WriteFile(filepath.Join(dir, "haproxy26"), nil, 0o755)
	if got := locateHAProxy("", filepath.Join(dir, "haproxy-systemd-wrapper")); got != filepath.Join(dir, "haproxy") {
		t.Errorf("next to the wrapper: %s", got)
	}
	if got := locateHAProxy("", filepath.Join(dir, "haproxy26-systemd-wrapper")); got != filepath.Join(dir, "haproxy26") {
		t.Errorf("X-systemd-wrapper runs X: %s", got)
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		line  string
		state string
		ppid  int
	}{
		{"123 (haproxy) S 77 123 123 0 -1", "S", 77},
		{"123 (ha proxy) (x) Z 1 2", "Z", 1},
		{"123 (a) b) R 9 1", "R", 9},
		{"garbage", "", 0},
		{"123 (x)", "", 0},
	}
	for _, tt := range tests {
		state, ppid := parseStat(tt.line)
		if state != tt.state || ppid != tt.ppid {
			t.Errorf("parseStat(%q) = %q %d, want %q %d", tt.line, state, ppid, tt.state, tt.ppid)
		}
	}
}
