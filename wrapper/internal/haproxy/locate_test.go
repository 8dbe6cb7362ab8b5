package haproxy

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLocate: $HAPROXY_BIN first, then haproxy (or X for a wrapper named
// X-systemd-wrapper) next to the wrapper, then /usr/sbin/haproxy; a folder
// of that name is no binary.
func TestLocate(t *testing.T) {
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "haproxy-systemd-wrapper")
	if got := Locate("/opt/h", wrapper); got != "/opt/h" {
		t.Errorf("override: %s", got)
	}
	if err := os.Mkdir(filepath.Join(dir, "haproxy"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := Locate("", wrapper); got != "/usr/sbin/haproxy" {
		t.Errorf("nothing next to the wrapper but a folder: %s, want /usr/sbin/haproxy", got)
	}
	other := t.TempDir()
	for _, n := range []string{"haproxy", "haproxy26"} {
		if err := os.WriteFile(filepath.Join(other, n), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if got := Locate("", filepath.Join(other, "haproxy-systemd-wrapper")); got != filepath.Join(other, "haproxy") {
		t.Errorf("next to the wrapper: %s", got)
	}
	if got := Locate("", filepath.Join(other, "haproxy26-systemd-wrapper")); got != filepath.Join(other, "haproxy26") {
		t.Errorf("X-systemd-wrapper runs X: %s", got)
	}
}
