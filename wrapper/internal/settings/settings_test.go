package settings

import (
	"strings"
	"testing"
)

func TestSettingsValidation(t *testing.T) {
	base := Settings{ControlSocket: "/run/x.sock", RuntimeDir: "/run/x", StartTimeout: 1e9, StatusPeriod: 1e9, LogLevel: "info", MaxDraining: 50}
	lookup := func(env map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	}
	if err := base.Validate(lookup(nil)); err != nil {
		t.Fatalf("valid settings: %v", err)
	}
	if err := base.Validate(lookup(map[string]string{"CONFIG": ""})); err == nil || !strings.Contains(err.Error(), "CONFIG is set but empty") {
		t.Errorf("empty CONFIG: %v", err)
	}
	long := base
	long.ControlSocket = "/" + strings.Repeat("x", 200)
	if err := long.Validate(lookup(nil)); err == nil || !strings.Contains(err.Error(), "HAPROXY_WRAPPER_CONTROL_SOCKET") {
		t.Errorf("long socket path: %v", err)
	}
	bad := base
	bad.LogLevel = "loud"
	if err := bad.Validate(lookup(nil)); err == nil || !strings.Contains(err.Error(), "HAPROXY_WRAPPER_LOG_LEVEL") {
		t.Errorf("bad level: %v", err)
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	h := HelpText()
	for _, v := range Vars() {
		if v.Name == "" || !strings.Contains(h, v.Name) {
			t.Errorf("help lacks %q", v.Name)
		}
	}
	for _, want := range []string{"HAPROXY_STATS_SOCKET", "control.sock in the runtime folder", "(default: 60s)"} {
		if !strings.Contains(h, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestDefaultRuntimeDir(t *testing.T) {
	if got, want := DefaultRuntimeDir("/run/haproxy:/run/other", "/etc/haproxy/haproxy.cfg"), "/run/haproxy"; got != want {
		t.Errorf("with RUNTIME_DIRECTORY: got %q, want %q", got, want)
	}
	a := DefaultRuntimeDir("", "/etc/haproxy/a.cfg")
	b := DefaultRuntimeDir("", "/etc/haproxy/b.cfg")
	if a == b || !strings.HasPrefix(a, RuntimeBase+"/a.cfg-") || !strings.HasPrefix(b, RuntimeBase+"/b.cfg-") {
		t.Errorf("two configurations share or misname a folder: %q %q", a, b)
	}
	if got := DefaultRuntimeDir("", ""); got != RuntimeBase+"/default" {
		t.Errorf("no CONFIG: got %q", got)
	}
	if got := Instance("/x/we ird/../na me;rm.cfg"); strings.ContainsAny(got, " ;/") {
		t.Errorf("instance name %q keeps unsafe characters", got)
	}
}
