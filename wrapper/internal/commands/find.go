package commands

// How a command finds the wrapper it talks to. The units run the wrapper
// with RuntimeDirectory=haproxy-systemd-wrapper/%N, so haproxy.service's
// control socket is /run/haproxy-systemd-wrapper/haproxy/control.sock and
// haproxy@edge.service's /run/haproxy-systemd-wrapper/haproxy@edge/control.sock;
// a wrapper started by hand uses a folder there named after its CONFIG
// (settings.Instance). An operator names a wrapper as systemd does, with
// --unit NAME; with no name at all, the commands look at every folder there.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/settings"
)

// ControlSocketName is the control socket's name in a runtime folder.
const ControlSocketName = "control.sock"

// explicitVars name one wrapper through the environment: with any of them
// set, a command talks to the one control socket they give (settings.Load),
// as ExecReload= does with systemd's $RUNTIME_DIRECTORY.
var explicitVars = []string{"HAPROXY_WRAPPER_CONTROL_SOCKET", "HAPROXY_WRAPPER_RUNTIME_DIR", "RUNTIME_DIRECTORY", "CONFIG"}

// where is what a command talks to: one control socket, named by --unit
// (unit set) or by the environment, or, when socket is empty, every wrapper
// found under base.
type where struct {
	socket string
	unit   string
	base   string
}

// unitFolder checks a --unit NAME: a unit's name as systemd's %N gives it
// (haproxy, haproxy@edge; a ".service" suffix is dropped), which is the
// wrapper's runtime folder under settings.RuntimeBase.
func unitFolder(name string) (string, error) {
	n := strings.TrimSuffix(name, ".service")
	if n == "" || n == "." || n == ".." || len(n) > 255 {
		return "", fmt.Errorf("--unit %q is not a unit name (e.g. haproxy or haproxy@edge)", name)
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(":_.@-\\", c)) {
			return "", fmt.Errorf("--unit %q is not a unit name (letters, digits and :_.@-\\ only, e.g. haproxy@edge)", name)
		}
	}
	return n, nil
}

// locate decides what a command talks to: --unit NAME, else the one socket
// the environment gives when any of explicitVars is set (load reads it and
// refuses bad values), else every wrapper under base.
func locate(unit, base string, lookup func(string) (string, bool), load func() (settings.Settings, error)) (where, error) {
	if unit != "" {
		return where{socket: filepath.Join(base, unit, ControlSocketName), unit: unit, base: base}, nil
	}
	for _, v := range explicitVars {
		if _, set := lookup(v); set {
			s, err := load()
			if err != nil {
				return where{}, err
			}
			return where{socket: s.ControlSocket, base: base}, nil
		}
	}
	return where{base: base}, nil
}

// found is a wrapper that answers on a control socket under the base.
type found struct {
	name   string // its runtime folder: the unit's name, or its CONFIG's instance name
	socket string
	pid    int
}

// privateFolder refuses a folder that is a symlink, belongs to neither root
// nor this user, or that group or others may write: a socket in it could
// be another user's.
func privateFolder(path string) error {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return err
	}
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFDIR:
		return fmt.Errorf("%s is not a folder (a symlink?)", path)
	case st.Uid != 0 && int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s belongs to uid %d", path, st.Uid)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("%s is writable by group or others (mode %o)", path, st.Mode&0o7777)
	}
	return nil
}

// discover lists the wrappers answering on a control socket in a folder
// under base, in the folders' order. Folders without a socket, and sockets
// no process answers on (left by a wrapper that was killed), are skipped;
// a folder or socket that is not the wrapper's (privateFolder,
// control.Peer: owner, the server's credentials) is skipped with a note.
func discover(base string) ([]found, []string, error) {
	if err := privateFolder(base); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("not looking for wrappers: %w", err)
	}
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil, nil, err
	}
	var out []found
	var notes []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(base, e.Name())
		if err := privateFolder(dir); err != nil {
			notes = append(notes, fmt.Sprintf("skipping %v", err))
			continue
		}
		sock := filepath.Join(dir, ControlSocketName)
		if _, err := os.Lstat(sock); err != nil {
			continue
		}
		pid, err := control.Peer(sock)
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			continue
		case err != nil:
			notes = append(notes, fmt.Sprintf("skipping %s: %v", e.Name(), err))
			continue
		}
		out = append(out, found{name: e.Name(), socket: sock, pid: pid})
	}
	return out, notes, nil
}

// names lists the wrappers' names, comma-separated.
func names(fs []found) string {
	n := make([]string, len(fs))
	for i, f := range fs {
		n[i] = f.name
	}
	return strings.Join(n, ", ")
}

// findAll is discover with its notes printed for the command cmd.
func findAll(cmd, base string) ([]found, error) {
	fs, notes, err := discover(base)
	for _, n := range notes {
		say("%s: %s", cmd, n)
	}
	return fs, err
}

// one resolves w to a single control socket for cmd. ok is false when
// there is none to talk to: nothing runs (the line said, code notFound),
// or several wrappers run and none was named (64).
func (w where) one(cmd string, notFound int) (socket string, code int, ok bool) {
	if w.socket != "" {
		return w.socket, 0, true
	}
	fs, err := findAll(cmd, w.base)
	switch {
	case err != nil:
		say("%s: %v", cmd, err)
		return "", notFound, false
	case len(fs) == 0:
		say("%s: no running haproxy-systemd-wrapper found under %s: name one with --unit NAME, CONFIG or HAPROXY_WRAPPER_CONTROL_SOCKET", cmd, w.base)
		return "", notFound, false
	case len(fs) > 1:
		say("%s: %d wrappers run here (%s): pick one with --unit NAME, e.g. %s --unit %s", cmd, len(fs), names(fs), cmd, fs[0].name)
		return "", proc.ExitUsage, false
	}
	return fs[0].socket, 0, true
}

// explain adds to a failed request's error, when --unit named a wrapper
// that does not run, which ones do.
func (w where) explain(err error) error {
	if w.unit == "" || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	fs, _, _ := discover(w.base)
	running := "none runs here"
	if len(fs) > 0 {
		running = "running here: " + names(fs)
	}
	return fmt.Errorf("no wrapper runs as --unit %s (no %s); %s", w.unit, w.socket, running)
}
