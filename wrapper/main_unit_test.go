package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"haproxy-systemd-wrapper/wrapper/internal/settings"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// TestManPageInStepWithHelp: the man page (contrib/haproxy-systemd-wrapper.8)
// names every environment variable and every command that --help names,
// and no variable that --help does not know; man --warnings finds nothing
// to say about it.
func TestManPageInStepWithHelp(t *testing.T) {
	page, err := os.ReadFile("../contrib/haproxy-systemd-wrapper.8")
	if err != nil {
		t.Fatal(err)
	}
	help := settings.HelpText()
	varRe := regexp.MustCompile(`\b(?:HAPROXY_[A-Z_]+|CONFIG|PIDFILE|NOTIFY_SOCKET|WATCHDOG_USEC|WATCHDOG_PID)\b`)
	inHelp := map[string]bool{}
	for _, v := range varRe.FindAllString(help, -1) {
		inHelp[v] = true
	}
	if len(inHelp) < 10 {
		t.Fatalf("only %d variables found in --help: the pattern is stale", len(inHelp))
	}
	// The ENVIRONMENT section lists each variable as a .B or .BR entry.
	env := string(page)
	if a, b := strings.Index(env, ".SH ENVIRONMENT"), strings.Index(env, ".SH SIGNALS"); a >= 0 && b > a {
		env = env[a:b]
	} else {
		t.Fatal("no ENVIRONMENT section followed by SIGNALS in the man page")
	}
	inMan := map[string]bool{}
	for _, v := range varRe.FindAllString(env, -1) {
		inMan[v] = true
	}
	for v := range inHelp {
		if !inMan[v] {
			t.Errorf("%s is in --help but not in the man page's ENVIRONMENT section", v)
		}
	}
	for v := range inMan {
		if !inHelp[v] {
			t.Errorf("%s is in the man page's ENVIRONMENT section but not in --help", v)
		}
	}
	for _, cmd := range []string{"reload", "status", "last-reload", "version", "help", "--json", "--prometheus", "--version", "--help", "--unit"} {
		if !strings.Contains(help, cmd) {
			t.Errorf("--help does not name %s", cmd)
		}
		if !strings.Contains(string(page), "\n.B "+cmd) && !strings.Contains(string(page), strings.ReplaceAll(cmd, "-", `\-`)) {
			t.Errorf("the man page does not name %s", cmd)
		}
	}
	manBin, err := exec.LookPath("man")
	if err != nil {
		testutil.Unavailable(t, "man not installed: make deps installs man-db")
	}
	cmd := exec.Command(manBin, "--warnings", "-l", "../contrib/haproxy-systemd-wrapper.8")
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("man --warnings: %v\n%s", err, stderr.String())
	}
}
