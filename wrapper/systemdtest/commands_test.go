package systemdtest

// The wrapper's commands as an operator runs them in a root shell, with no
// setting at all: they find the service systemd runs.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"haproxy-systemd-wrapper/wrapper/internal/status"
)

// bareShell runs the wrapper's command inside as a root shell with an empty
// environment would (env -i: no CONFIG, no RUNTIME_DIRECTORY, no MAINPID)
// and returns its output and exit code.
func bareShell(t *testing.T, s *Systemd, wrapper string, args ...string) (string, int) {
	t.Helper()
	out, err := s.Exec(append([]string{"env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", wrapper}, args...)...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &ee):
		return out, ee.ExitCode()
	}
	t.Fatalf("%s %s: %v: %s", wrapper, strings.Join(args, " "), err, out)
	return "", -1
}

// checkBareCommands: after "systemctl start" of the unit whose runtime
// folder is name (its %N) and whose wrapper is main, a bare status prints
// its status under that name, and a bare status --json, reload and
// last-reload act on it.
func checkBareCommands(t *testing.T, s *Systemd, wrapper, name string, main int) {
	t.Helper()
	out, code := bareShell(t, s, wrapper, "status")
	if code != 0 || !strings.HasPrefix(out, name+":\n  haproxy ") || !strings.Contains(out, fmt.Sprintf(" pid %d, mode", main)) {
		t.Errorf("bare status: exit %d, want 0 and the status of %s (wrapper pid %d) under its name:\n%s", code, name, main, out)
	}
	out, code = bareShell(t, s, wrapper, "status", "--json")
	var r status.Report
	if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil || !r.Serving || r.WrapperPID != main {
		t.Errorf("bare status --json: exit %d, %v, serving %v, wrapper pid %d (want %d):\n%s", code, err, r.Serving, r.WrapperPID, main, out)
	}
	gen := r.Generation
	out, code = bareShell(t, s, wrapper, "reload")
	if code != 0 || !strings.HasPrefix(out, "reloaded: ") {
		t.Errorf("bare reload: exit %d, want 0 and reloaded:\n%s", code, out)
	}
	out, code = bareShell(t, s, wrapper, "last-reload")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("last reload ok: generation %d serving", gen+1)) {
		t.Errorf("bare last-reload: exit %d, want 0 and generation %d serving:\n%s", code, gen+1, out)
	}
}

// TestBareCommandsFindTheService: for the Type=notify, forking and legacy
// units installed as haproxy.service, a root shell's bare status, reload and
// last-reload find the wrapper in /run/haproxy-systemd-wrapper/haproxy
// (Debian's own unit switched by the drop-in: runSwitchedUnit).
func TestBareCommandsFindTheService(t *testing.T) {
	forEachKind(t, nil, func(t *testing.T, f *fixture) {
		main := mainPID(f.start())
		checkBareCommands(t, f.s, WrapperPath(), "haproxy", main)
	})
}

// TestCommandsFindTemplateInstances: with haproxy@alpha and haproxy@beta
// running, a bare status lists both under their names; a bare reload,
// last-reload or status --json refuses to choose (64, one line naming
// both); --unit NAME reloads that instance only; a --unit that does not run
// says which do; once one is stopped, a bare reload acts on the other.
func TestCommandsFindTemplateInstances(t *testing.T) {
	s := Boot(t)
	names := []string{"alpha", "beta"}
	dir, port, main := startInstances(t, s, names)
	w := WrapperPath()

	out, code := bareShell(t, s, w, "status")
	t.Logf("bare status, exit %d:\n%s", code, out)
	if code != 0 || !strings.HasPrefix(out, "haproxy@alpha:\n  haproxy ") || !strings.Contains(out, "\n\nhaproxy@beta:\n  haproxy ") ||
		!strings.Contains(out, fmt.Sprintf(" pid %d, mode", main["alpha"])) || !strings.Contains(out, fmt.Sprintf(" pid %d, mode", main["beta"])) {
		t.Errorf("bare status with two instances: exit %d, want 0 and both, each under its name", code)
	}
	for _, args := range [][]string{{"reload"}, {"last-reload"}, {"status", "--json"}, {"status", "--prometheus"}} {
		out, code := bareShell(t, s, w, args...)
		if args[0] == "reload" {
			t.Logf("bare reload, exit %d:\n%s", code, out)
		}
		if code != 64 || strings.Count(out, "\n") != 0 || !strings.Contains(out, "haproxy@alpha, haproxy@beta") || !strings.Contains(out, "--unit") {
			t.Errorf("bare %s with two instances: exit %d, want 64 and one line naming both and --unit:\n%s", strings.Join(args, " "), code, out)
		}
	}
	for round, n := range names {
		other := names[1-round]
		writeFile(t, filepath.Join(dir, n+".cfg"), instanceConfig(n, port[n], n+"-2"))
		out, code := bareShell(t, s, w, "reload", "--unit", "haproxy@"+n)
		t.Logf("reload --unit haproxy@%s, exit %d: %s", n, code, out)
		if code != 0 || !strings.HasPrefix(out, "reloaded: ") {
			t.Errorf("reload --unit haproxy@%s: exit %d:\n%s", n, code, out)
		}
		if c, body, err := HTTPGet(port[n]); err != nil || c != 200 || body != n+"-2" {
			t.Errorf("right after reload --unit haproxy@%s: %d %q %v, want %s-2", n, c, body, err, n)
		}
		want := other + "-1"
		if round == 1 {
			want = other + "-2"
		}
		if c, body, err := HTTPGet(port[other]); err != nil || c != 200 || body != want {
			t.Errorf("reload --unit haproxy@%s changed %s: %d %q %v, want %s", n, other, c, body, err, want)
		}
		out, code = bareShell(t, s, w, "status", "--unit", "haproxy@"+n+".service", "--json")
		var r status.Report
		if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil || r.WrapperPID != main[n] || r.Reloads != 1 {
			t.Errorf("status --unit haproxy@%s.service --json: exit %d %v: wrapper pid %d reloads %d, want %d and 1", n, code, err, r.WrapperPID, r.Reloads, main[n])
		}
	}
	out, code = bareShell(t, s, w, "reload", "--unit", "haproxy@gamma")
	if code != 1 || !strings.Contains(out, "no wrapper runs as --unit haproxy@gamma") || !strings.Contains(out, "running here: haproxy@alpha, haproxy@beta") {
		t.Errorf("reload --unit haproxy@gamma: exit %d, want 1 and the instances that run:\n%s", code, out)
	}
	if out, err := s.Systemctl("stop", instanceUnit("beta")); err != nil {
		t.Fatalf("systemctl stop %s: %v: %s", instanceUnit("beta"), err, out)
	}
	checkBareCommands(t, s, w, "haproxy@alpha", main["alpha"])
}
