package earlysig

import "testing"

// TestSupervising: haproxy arguments (or none) start the supervisor; a
// wrapper command, a meta flag and a test binary's own flags do not.
func TestSupervising(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want bool
	}{
		{[]string{"haproxy-systemd-wrapper"}, true},
		{[]string{"haproxy-systemd-wrapper", "-f", "/etc/haproxy/haproxy.cfg"}, true},
		{[]string{"haproxy-systemd-wrapper", "-Ws", "-f", "x.cfg"}, true},
		{[]string{"haproxy-systemd-wrapper", "reload"}, false},
		{[]string{"haproxy-systemd-wrapper", "status", "--json"}, false},
		{[]string{"haproxy-systemd-wrapper", "--help"}, false},
		{[]string{"haproxy-systemd-wrapper", "-h"}, false},
		{[]string{"haproxy-systemd-wrapper", "--version"}, false},
		{[]string{"wrapper.test", "-test.run", "X"}, false},
	} {
		if got := Supervising(tc.argv); got != tc.want {
			t.Errorf("Supervising(%q) = %v, want %v", tc.argv, got, tc.want)
		}
	}
}

// TestMetaFlagsNameCommands: every meta flag means a command, and no
// spelling of one is a haproxy option the supervisor would need.
func TestMetaFlagsNameCommands(t *testing.T) {
	for flag, cmd := range MetaFlags {
		if cmd != "help" && cmd != "version" {
			t.Errorf("meta flag %s means %q, want help or version", flag, cmd)
		}
		if Supervising([]string{"w", flag}) {
			t.Errorf("%s starts the supervisor", flag)
		}
	}
}
