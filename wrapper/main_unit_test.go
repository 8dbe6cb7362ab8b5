package main

import (
	"os"
	"path/filepath"
	"testing"
)

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

func TestCommandsRefuseUnknownArguments(t *testing.T) {
	for _, args := range [][]string{
		{"bogus"},
		{"reload", "--now"},
		{"reload", "extra"},
		{"status", "--bogus"},
		{"status", "--prometheus"},
		{"status", "--json", "extra"},
		{"version", "x"},
		{"help", "x"},
	} {
		if got := command(args); got != 64 {
			t.Errorf("command(%q) = %d, want 64 (usage)", args, got)
		}
	}
}
