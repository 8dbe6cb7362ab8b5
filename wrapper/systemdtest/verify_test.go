package systemdtest

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// TestUnitsVerify renders every contrib unit the way "make units" does and
// runs systemd-analyze verify on it (no systemd boot needed). verify also
// opens each Documentation= man page: the project's own comes from contrib/, as
// installed.
func TestUnitsVerify(t *testing.T) {
	analyze := systemdAnalyze(t)
	dir := t.TempDir()
	man := filepath.Join(t.TempDir(), "man")
	page, err := os.ReadFile("../../contrib/haproxy-systemd-wrapper.8")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(man, "man8", "haproxy-systemd-wrapper.8"), string(page))
	for _, name := range append(append([]string(nil), shippedUnits...), "haproxy-reload.path") {
		p := filepath.Join(dir, instanceName(name))
		writeFile(t, p, RenderUnit(t, name+".in"))
		cmd := exec.Command(analyze, "verify", p)
		cmd.Env = append(os.Environ(), "MANPATH="+man+":") // then the system's
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
		}
	}
}

// systemdAnalyze is the path of systemd-analyze (no boot needed).
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testutil.Unavailable(t, "systemd-analyze not installed: make deps installs systemd")
	}
	return analyze
}

// shippedUnits are the units in contrib/systemd (templates rendered as
// NAME.in).
var shippedUnits = []string{"haproxy.service", "haproxy@.service", "haproxy-forking.service", "haproxy-legacy.service", "haproxy-reload.service"}

// instanceName names a template's instance for the tools that need a
// concrete unit ("haproxy@.service" -> "haproxy@hsw.service").
func instanceName(unit string) string {
	return strings.Replace(unit, "@.", "@hsw.", 1)
}

// TestUnitsSecurity rates each shipped unit with "systemd-analyze security"
// (offline, no boot): each must be 5.0 ("MEDIUM") or lower. Debian's own
// haproxy.service is rated too, for the record (README "Units").
func TestUnitsSecurity(t *testing.T) {
	analyze := systemdAnalyze(t)
	rate := func(path string) (float64, string) {
		t.Helper()
		out, err := exec.Command(analyze, "security", "--offline=true", "--no-pager", path).CombinedOutput()
		m := exposureRe.FindSubmatch(out)
		if m == nil {
			t.Fatalf("systemd-analyze security %s: %v: no overall exposure line in:\n%s", path, err, out)
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v, string(m[2])
	}
	dir := t.TempDir()
	for _, name := range shippedUnits {
		p := filepath.Join(dir, instanceName(name))
		writeFile(t, p, RenderUnit(t, name+".in"))
		v, verdict := rate(p)
		t.Logf("%s: %.1f %s", name, v, verdict)
		if v > 5.0 {
			t.Errorf("%s: systemd-analyze security rates it %.1f %s, want 5.0 or lower", name, v, verdict)
		}
	}
	if _, err := os.Stat("/lib/systemd/system/haproxy.service"); err == nil {
		v, verdict := rate("/lib/systemd/system/haproxy.service")
		t.Logf("Debian's own haproxy.service: %.1f %s", v, verdict)
	}
}

var exposureRe = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\S+)`)

// TestWrapperBinaryIsStatic: the wrapper is built without cgo (as make build
// does) and has no program interpreter, so the same file runs on any Linux
// distribution and release.
func TestWrapperBinaryIsStatic(t *testing.T) {
	f, err := elf.Open(WrapperPath())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a %s program header: dynamically linked (build with CGO_ENABLED=0)", WrapperPath(), p.Type)
		}
	}
}
