package systemdtest

// make install and make uninstall beside Debian's own haproxy package.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// TestInstallBesideDebianPackage runs "make install" where Debian's haproxy
// package owns haproxy.service: it writes no file a package owns (dpkg -S
// knows none of them, dpkg --verify haproxy stays clean) and switches the
// packaged unit to the wrapper by a drop-in of its own. Under a real systemd,
// Debian's unit with that drop-in and an overwrite.conf that sets CONFIG
// runs the wrapper on that configuration, reloads and stops; "make
// uninstall" then removes every file it wrote.
func TestInstallBesideDebianPackage(t *testing.T) {
	const packaged = "/lib/systemd/system/haproxy.service"
	if out, err := exec.Command("dpkg", "-S", packaged).CombinedOutput(); err != nil {
		t.Fatalf("dpkg -S %s: %v: %s (make deps installs Debian's haproxy package)", packaged, err, out)
	}
	prefix := SharedTempDir(t)
	mk := func(target string) string {
		t.Helper()
		cmd := exec.Command("make", "-C", "../..", target, "PREFIX="+prefix)
		cmd.Env = append(os.Environ(), "DESTDIR=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s PREFIX=%s: %v\n%s", target, prefix, err, out)
		}
		return string(out)
	}
	out := mk("install")
	t.Logf("make install:\n%s", out)
	dropIn := filepath.Join(prefix, "lib/systemd/system/haproxy.service.d/50-haproxy-systemd-wrapper.conf")
	if _, err := os.Stat(dropIn); err != nil {
		t.Fatalf("no drop-in for the packaged unit: %v", err)
	}
	if _, err := os.Stat(filepath.Join(prefix, "lib/systemd/system/haproxy.service")); err == nil {
		t.Errorf("make install wrote a haproxy.service although %s belongs to a package", packaged)
	}
	manifest, err := os.ReadFile(filepath.Join(prefix, "share/doc/haproxy-systemd-wrapper/installed-files"))
	if err != nil {
		t.Fatal(err)
	}
	files := strings.Fields(string(manifest))
	for _, f := range files {
		if out, err := exec.Command("dpkg", "-S", f).CombinedOutput(); err == nil {
			t.Errorf("make install wrote %s, which a package owns: %s", f, out)
		}
	}
	if out, err := exec.Command("dpkg", "--verify", "haproxy").CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("dpkg --verify haproxy after make install: %v\n%s", err, out)
	}

	// Debian's unit, the installed drop-in and a local overwrite.conf,
	// under a real systemd.
	s := Boot(t)
	debianUnit, err := os.ReadFile(packaged)
	if err != nil {
		t.Fatal(err)
	}
	installed, err := os.ReadFile(dropIn)
	if err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(prefix, "sbin/haproxy-systemd-wrapper")
	cat := runSwitchedUnit(t, s, string(debianUnit), string(installed), prefix, wrapper)
	if !strings.Contains(cat, wrapper+" -f $CONFIG") || !strings.Contains(cat, "/usr/sbin/haproxy -Ws") {
		t.Errorf("systemctl cat %s does not show Debian's unit switched to the wrapper:\n%s", unitName, cat)
	}

	t.Logf("make uninstall:\n%s", mk("uninstall"))
	for _, f := range files {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s still there after make uninstall", f)
		}
	}
}

// TestDebPackage builds the package with "make deb" (dpkg-deb, no network)
// and checks it: lintian finds no error and no warning; it depends on
// haproxy; it ships the drop-in for Debian's haproxy.service and never a
// file named like one the haproxy package owns, nothing under /etc; its
// wrapper runs.
func TestDebPackage(t *testing.T) {
	if _, err := exec.LookPath("lintian"); err != nil {
		testutil.Unavailable(t, "lintian not installed: make deps installs it (apt-get install lintian)")
	}
	deb := buildDeb(t)
	lint := exec.Command("lintian", "--fail-on", "error,warning", deb)
	lout, err := lint.CombinedOutput()
	t.Logf("lintian %s:\n%s", filepath.Base(deb), lout)
	if err != nil {
		t.Errorf("lintian: %v", err)
	}
	if dep, err := exec.Command("dpkg-deb", "-f", deb, "Depends").Output(); err != nil || strings.TrimSpace(string(dep)) != "haproxy" {
		t.Errorf("Depends: %q %v, want haproxy", dep, err)
	}
	list, err := exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatal(err)
	}
	owned, _ := exec.Command("dpkg", "-L", "haproxy").Output()
	ownedSet := map[string]bool{}
	for _, f := range strings.Fields(string(owned)) {
		ownedSet[f] = true
	}
	var files []string
	for _, l := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		fs := strings.Fields(l)
		name := strings.TrimPrefix(fs[len(fs)-1], ".")
		if strings.HasSuffix(name, "/") {
			continue
		}
		files = append(files, name)
		if strings.HasPrefix(name, "/etc/") || ownedSet[name] || ownedSet[strings.Replace(name, "/usr/lib/", "/lib/", 1)] {
			t.Errorf("the package ships %s (under /etc, or a file of the haproxy package)", name)
		}
	}
	for _, want := range []string{"/usr/sbin/haproxy-systemd-wrapper", "/usr/lib/systemd/system/haproxy.service.d/50-haproxy-systemd-wrapper.conf",
		"/usr/lib/systemd/system/haproxy@.service", "/usr/share/man/man8/haproxy-systemd-wrapper.8.gz"} {
		found := false
		for _, f := range files {
			found = found || f == want
		}
		if !found {
			t.Errorf("the package lacks %s; it has:\n%s", want, strings.Join(files, "\n"))
		}
	}
	x := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", deb, x).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v %s", err, out)
	}
	if out, err := exec.Command(filepath.Join(x, "usr/sbin/haproxy-systemd-wrapper"), "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "haproxy-systemd-wrapper ") {
		t.Errorf("the packaged wrapper's version: %v %q", err, out)
	}
	checkLicense(t, filepath.Join(x, "usr/share/doc/haproxy-systemd-wrapper/copyright"))
}

// checkLicense: the project's LICENSE is the standard Apache License 2.0
// text (Debian's copy of it, /usr/share/common-licenses/Apache-2.0), and
// the package's copyright file, in the machine-readable format (DEP-5),
// names it for the project's files.
func checkLicense(t *testing.T, copyright string) {
	t.Helper()
	license, err := os.ReadFile("../../LICENSE")
	if err != nil {
		t.Fatalf("the project's LICENSE: %v", err)
	}
	standard, err := os.ReadFile("/usr/share/common-licenses/Apache-2.0")
	if err != nil {
		t.Fatalf("Debian's copy of the Apache License 2.0 (base-files): %v", err)
	}
	if string(license) != string(standard) {
		t.Errorf("LICENSE is not the standard Apache License 2.0 text (%d bytes, want %d)", len(license), len(standard))
	}
	c, err := os.ReadFile(copyright)
	if err != nil {
		t.Fatalf("the package's copyright file: %v", err)
	}
	text := string(c)
	if !strings.HasPrefix(text, "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n") ||
		!strings.Contains(text, "\nFiles: *\nCopyright: ") || !strings.Contains(text, "\nLicense: Apache-2.0\n") ||
		!strings.Contains(text, "/usr/share/common-licenses/Apache-2.0") {
		t.Errorf("the package's copyright file is not a DEP-5 file naming Apache-2.0 for the project's files:\n%s", text)
	}
}

// buildDeb runs make deb and returns the package's path.
func buildDeb(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("make", "-C", "../..", "deb").CombinedOutput()
	if err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if p, ok := strings.CutPrefix(l, "built "); ok {
			return filepath.Join("../..", strings.TrimSpace(p))
		}
	}
	t.Fatalf("make deb did not say what it built:\n%s", out)
	return ""
}

// TestDebInstallsInRoot (make matrix, HSW_SUITE=bookworm|trixie): the
// package from make deb installs with dpkg into that Debian release's root
// (an overlay, dropped afterwards) beside its haproxy package, which stays
// unmodified (dpkg --verify); its drop-in switches the release's own
// haproxy.service to the wrapper, which starts, reloads and stops there.
func TestDebInstallsInRoot(t *testing.T) {
	if bootRoot == "" {
		t.Skip("needs a Debian root: HSW_SUITE=bookworm or trixie (make matrix)")
	}
	deb := buildDeb(t)
	dir := SharedTempDir(t)
	pkg := filepath.Join(dir, filepath.Base(deb))
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, pkg, string(b))
	s := BootOverlay(t)
	if out, err := s.ExecTimeout(2*time.Minute, "dpkg", "-i", pkg); err != nil {
		t.Fatalf("dpkg -i %s: %v\n%s", filepath.Base(pkg), err, out)
	}
	if out, err := s.Exec("dpkg", "--verify", "haproxy"); err != nil || out != "" {
		t.Errorf("dpkg --verify haproxy after installing the package: %v\n%s", err, out)
	}
	if out, err := s.Exec("dpkg", "--verify", "haproxy-systemd-wrapper"); err != nil || out != "" {
		t.Errorf("dpkg --verify haproxy-systemd-wrapper: %v\n%s", err, out)
	}
	// The release's own haproxy.service, read from the root's unit folder
	// (the boot's unit path holds only the test units).
	debianUnit, err := s.ReadFile("/usr/lib/systemd/system/haproxy.service")
	if err != nil {
		t.Fatal(err)
	}
	dropIn, err := s.ReadFile("/usr/lib/systemd/system/haproxy.service.d/50-haproxy-systemd-wrapper.conf")
	if err != nil {
		t.Fatalf("the package's drop-in: %v", err)
	}
	runSwitchedUnit(t, s, debianUnit, dropIn, dir, "/usr/sbin/haproxy-systemd-wrapper")
	if out, err := s.ExecTimeout(time.Minute, "dpkg", "-r", "haproxy-systemd-wrapper"); err != nil {
		t.Errorf("dpkg -r: %v\n%s", err, out)
	}
	if _, err := s.ReadFile("/usr/sbin/haproxy-systemd-wrapper"); err == nil {
		t.Errorf("the wrapper is still there after dpkg -r")
	}
}

// runSwitchedUnit runs Debian's haproxy.service (debianUnit) with the
// wrapper's drop-in (dropIn) and a local overwrite.conf that sets CONFIG to a
// test configuration in dir, under s: it starts with the wrapper at wantExe
// as its main process and serves, names the -S of Debian's $EXTRAOPTS, a
// root shell's bare commands find it (checkBareCommands), it reloads and
// stops. It returns systemctl cat's text.
func runSwitchedUnit(t *testing.T, s *Systemd, debianUnit, dropIn, dir, wantExe string) string {
	t.Helper()
	port := testutil.Port(t)
	cfg := filepath.Join(dir, "local.cfg")
	writeFile(t, cfg, haproxyConfig(port, "switched-1"))
	if err := os.MkdirAll(s.Path("/run/hsw"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.WriteUnit(unitName, debianUnit)
	s.WriteDropIn(unitName, "50-haproxy-systemd-wrapper.conf", dropIn)
	s.WriteDropIn(unitName, "overwrite.conf", fmt.Sprintf(`[Service]
Environment=CONFIG=%s
%sRestartSec=100ms
TimeoutStopSec=15s
`, cfg, devLogBind))
	s.DaemonReload()
	s.JournalOnFailure(t, unitName)
	cat, _ := s.Systemctl("cat", unitName)
	if out, err := s.Systemctl("start", unitName); err != nil {
		t.Fatalf("systemctl start: %v: %s\nstate: %s", err, out, FormatState(s.State(unitName)))
	}
	main := mainPID(s.State(unitName))
	if exe, ok := s.WaitExe(main, wantExe); !ok {
		t.Errorf("MainPID %d runs %q, want %s", main, exe, wantExe)
	}
	WaitHTTP(t, port, "switched-1", 5*time.Second)
	// Debian's unit passes "-S /run/haproxy-master.sock" in $EXTRAOPTS.
	if j, ok := s.WaitJournal(unitName, "-S /run/haproxy-master.sock: ignored", 5*time.Second); !ok {
		t.Errorf("no line about Debian's -S in the journal:\n%s", j)
	}
	// A root shell's bare commands find it (RuntimeDirectory= of the drop-in).
	checkBareCommands(t, s, wantExe, "haproxy", main)
	writeFile(t, cfg, haproxyConfig(port, "switched-2"))
	if out, err := s.Systemctl("reload", unitName); err != nil {
		t.Fatalf("systemctl reload: %v: %s", err, out)
	}
	if code, body, err := HTTPGet(port); err != nil || code != 200 || body != "switched-2" {
		t.Errorf("after the reload: %d %q %v", code, body, err)
	}
	if out, err := s.Systemctl("stop", unitName); err != nil {
		t.Fatalf("systemctl stop: %v: %s", err, out)
	}
	if st := s.State(unitName); st["Result"] != "success" {
		t.Errorf("after stop: %s", FormatState(st))
	}
	return cat
}
