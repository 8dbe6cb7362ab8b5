package systemdtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// Driving a booted systemd: commands inside it, systemctl, unit states,
// unit files and drop-ins, the journal.

// ExecTimeout runs a command inside the booted systemd's mount and PID
// namespaces and returns its combined output, trimmed.
func (s *Systemd) ExecTimeout(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// -r -w: the booted root's own binaries (a Debian root's systemctl
	// talks to its own systemd), from its root folder.
	full := append([]string{"-t", strconv.Itoa(s.PID), "-m", "-p", "-r", "-w", "--"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", full...)
	cmd.Env = append(os.Environ(), "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "LC_ALL=C")
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s: timed out after %v (%w)", strings.Join(args, " "), timeout, err)
	}
	return strings.TrimSpace(string(out)), err
}

// Exec runs a command inside (60 s at most).
func (s *Systemd) Exec(args ...string) (string, error) {
	return s.ExecTimeout(60*time.Second, args...)
}

// Systemctl runs systemctl inside (60 s at most).
func (s *Systemd) Systemctl(args ...string) (string, error) {
	return s.SystemctlTimeout(60*time.Second, args...)
}

// SystemctlTimeout runs systemctl inside with a time limit.
func (s *Systemd) SystemctlTimeout(timeout time.Duration, args ...string) (string, error) {
	return s.ExecTimeout(timeout, append([]string{"systemctl", "--no-pager", "--no-ask-password"}, args...)...)
}

// DaemonReload runs `systemctl daemon-reload` and fails the test on error.
func (s *Systemd) DaemonReload() {
	s.t.Helper()
	if out, err := s.Systemctl("daemon-reload"); err != nil {
		s.t.Fatalf("systemctl daemon-reload: %v: %s", err, out)
	}
}

// Show returns `systemctl show -p props unit` as a map.
func (s *Systemd) Show(unit string, props ...string) map[string]string {
	s.t.Helper()
	m, err := s.show(unit, props...)
	if err != nil {
		s.t.Fatal(err)
	}
	return m
}

func (s *Systemd) show(unit string, props ...string) (map[string]string, error) {
	args := []string{"show"}
	if len(props) > 0 {
		args = append(args, "-p", strings.Join(props, ","))
	}
	out, err := s.Systemctl(append(args, unit)...)
	if err != nil {
		return nil, fmt.Errorf("systemctl show %s: %v: %s", unit, err, out)
	}
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m, nil
}

// StateProps are the properties the tests assert on.
var StateProps = []string{"MainPID", "ActiveState", "SubState", "StatusText", "Result", "ExecMainStatus", "NRestarts"}

// State is Show(unit, StateProps...).
func (s *Systemd) State(unit string) map[string]string {
	s.t.Helper()
	return s.Show(unit, StateProps...)
}

// FormatState renders a Show map compactly, keys sorted.
func FormatState(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

// WaitState polls Show(unit, StateProps...) until cond holds.
func (s *Systemd) WaitState(unit string, timeout time.Duration, what string, cond func(map[string]string) bool) map[string]string {
	s.t.Helper()
	var last map[string]string
	err := testutil.Poll(timeout, 50*time.Millisecond, func() (bool, string) {
		m, err := s.show(unit, StateProps...)
		if err != nil {
			return false, err.Error()
		}
		last = m
		return cond(m), FormatState(m)
	})
	if err != nil {
		s.t.Fatalf("%s: waiting for %s: %v", unit, what, err)
	}
	return last
}

// Path is the host path of a file inside the booted systemd's mounts.
func (s *Systemd) Path(p string) string { return s.Root + p }

// ReadFile reads a file as the booted systemd sees it (its /proc, /run, ...).
func (s *Systemd) ReadFile(p string) (string, error) {
	b, err := os.ReadFile(s.Path(p))
	return string(b), err
}

// WriteFile writes a file inside (e.g. below /run), creating folders.
func (s *Systemd) WriteFile(p, content string) {
	s.t.Helper()
	writeFile(s.t, s.Path(p), content)
}

// WriteUnit writes /etc/systemd/system/<name> inside (private tmpfs).
// Call DaemonReload afterwards.
func (s *Systemd) WriteUnit(name, content string) {
	s.t.Helper()
	s.WriteFile("/etc/systemd/system/"+name, content)
}

// WriteDropIn writes /etc/systemd/system/<unit>.d/<name> inside.
// Call DaemonReload afterwards.
func (s *Systemd) WriteDropIn(unit, name, content string) {
	s.t.Helper()
	s.WriteFile("/etc/systemd/system/"+unit+".d/"+name, content)
}

// Journal returns journalctl -u unit inside (after asking journald to sync).
func (s *Systemd) Journal(unit string) string {
	s.t.Helper()
	_, _ = s.ExecTimeout(10*time.Second, "journalctl", "--sync")
	out, err := s.Exec("journalctl", "--no-pager", "-o", "short-precise", "-u", unit)
	if err != nil {
		s.t.Logf("journalctl -u %s: %v", unit, err)
	}
	return out
}

// JournalOnFailure logs the journal of each unit at the end of t, if t
// failed (before the boot's own teardown).
func (s *Systemd) JournalOnFailure(t *testing.T, units ...string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, u := range units {
			t.Logf("journal of %s:\n%s", u, s.Journal(u))
		}
	})
}

// WaitJournal polls the unit's journal until it contains substr; it
// returns the journal and whether substr was found.
func (s *Systemd) WaitJournal(unit, substr string, timeout time.Duration) (string, bool) {
	s.t.Helper()
	var j string
	err := testutil.Poll(timeout, 100*time.Millisecond, func() (bool, string) {
		j = s.Journal(unit)
		return strings.Contains(j, substr), ""
	})
	return j, err == nil
}
