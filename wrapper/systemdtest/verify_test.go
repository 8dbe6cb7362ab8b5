package systemdtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnitsVerify renders every contrib unit the way "make units" does and
// runs systemd-analyze verify on it (no systemd boot needed).
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze missing in CI: make deps installs systemd")
		}
		t.Skip("systemd-analyze not installed")
	}
	dir := t.TempDir()
	for _, name := range []string{"haproxy.service", "haproxy-forking.service", "haproxy-legacy.service"} {
		p := filepath.Join(dir, name)
		writeFile(t, p, RenderUnit(t, name+".in"))
		out, err := exec.Command(analyze, "verify", p).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
		}
	}
}
