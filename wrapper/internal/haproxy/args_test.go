package haproxy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
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
			Invocation{Args: []string{"-f", "/a.cfg"}, PIDFile: "/run/haproxy.pid", Daemon: true, Dropped: []string{"-D", "-Ds", "-db"},
				Notes: []string{"-D: used by the wrapper, which forks (for Type=forking); haproxy itself runs in the foreground",
					"-Ds: ignored, haproxy always runs in the foreground under the wrapper",
					"-db: ignored, haproxy always runs in the foreground under the wrapper"}}, ""},
		{"-S (Debian's EXTRAOPTS) is dropped with its value", []string{"-f", "/a.cfg", "-S", "/run/haproxy-master.sock", "-q"}, "", "",
			Invocation{Args: []string{"-f", "/a.cfg", "-q"}, PIDFile: "/run/haproxy.pid", Dropped: []string{"-S /run/haproxy-master.sock"},
				Notes: []string{"-S /run/haproxy-master.sock: ignored, the master CLI exists only in master-worker mode; the wrapper's status and reload commands replace it"}}, ""},
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
			got, err := ParseInvocation(tt.args, tt.config, tt.pidfile)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrUsage) {
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
		{"legacy reload: -sf, never -x (haproxy <= 1.7 does not know it)", ModeLegacy, []int{10, 11}, "/s.sock", "-f /a.cfg -p /run/haproxy.pid -Ds -sf 10 11"},
		{"legacy reload without stats socket", ModeLegacy, []int{10}, "", "-f /a.cfg -p /run/haproxy.pid -Ds -sf 10"},
		{"foreground first start", ModeForeground, nil, "", "-f /a.cfg -f /rt/gen-1.cfg -db"},
		{"foreground first start with sockets held (after a restart)", ModeForeground, nil, "/rt/listeners.sock", "-f /a.cfg -f /rt/gen-1.cfg -db -x /rt/listeners.sock"},
		{"foreground reload", ModeForeground, []int{7, 9}, "/s.sock", "-f /a.cfg -f /rt/gen-1.cfg -db -x /s.sock"},
	}
	for _, tt := range tests {
		got := strings.Join(ChildArgs(tt.mode, inv, tt.old, tt.stats, "/rt/gen-1.cfg"), " ")
		if got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	if got, want := strings.Join(CheckArgs(inv), " "), "-f /a.cfg -c"; got != want {
		t.Errorf("CheckArgs: got %q, want %q", got, want)
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
		major, minor, full, err := ParseVersion(tt.out)
		if (err != nil) != tt.err {
			t.Errorf("%q: err = %v", tt.out, err)
			continue
		}
		if tt.err {
			continue
		}
		if major != tt.major || minor != tt.minor || full != tt.full || ModeFor(major, minor) != tt.mode {
			t.Errorf("%q: got %d.%d %q %v, want %d.%d %q %v", tt.out, major, minor, full, ModeFor(major, minor), tt.major, tt.minor, tt.full, tt.mode)
		}
	}
}

func TestLegacyPipe(t *testing.T) {
	for v, want := range map[string]bool{"1.5.0": false, "1.5.18": false, "1.5.19": true, "1.5.27": true,
		"1.6.0": false, "1.6.16": false, "1.7.0": true, "1.7.14": true, "1.5": false, "1.5-dev19": false} {
		if got := LegacyPipe(v); got != want {
			t.Errorf("LegacyPipe(%q) = %v, want %v", v, got, want)
		}
	}
}
