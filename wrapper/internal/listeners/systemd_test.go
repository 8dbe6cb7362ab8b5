package listeners

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

var listenVars = []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", proc.EnvDaemonListen}

// TestFromEnvTakesNothingNotOurs: an upgrade's image, another process's
// LISTEN_PID and unreadable variables give no socket (the last with a note
// naming the variable), and the variables are gone afterwards every time.
func TestFromEnvTakesNothingNotOurs(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name    string
		resumed bool
		env     map[string]string
		note    string
	}{
		{"resumed", true, map[string]string{"LISTEN_PID": me, "LISTEN_FDS": "2"}, ""},
		{"another process", false, map[string]string{"LISTEN_PID": "1", "LISTEN_FDS": "2"}, ""},
		{"bad pid", false, map[string]string{"LISTEN_PID": "x", "LISTEN_FDS": "2"}, "LISTEN_PID"},
		{"bad count", false, map[string]string{"LISTEN_PID": me, "LISTEN_FDS": "-1"}, "LISTEN_FDS"},
		{"nothing", false, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			in := FromEnv(tc.resumed)
			if len(in.Sockets) != 0 {
				t.Errorf("took %d sockets", len(in.Sockets))
			}
			switch {
			case tc.note == "" && len(in.Notes) != 0:
				t.Errorf("notes %q, want none", in.Notes)
			case tc.note != "" && (len(in.Notes) != 1 || !strings.Contains(in.Notes[0], tc.note)):
				t.Errorf("notes %q, want one naming %s", in.Notes, tc.note)
			}
			for _, k := range listenVars {
				if v, ok := os.LookupEnv(k); ok {
					t.Errorf("%s=%q is still set", k, v)
				}
			}
		})
	}
}

// fromEnvChild is set in the process TestFromEnvDaemonPath starts.
const fromEnvChild = "HSW_TEST_FROMENV_CHILD"

// TestFromEnvDaemonPath: a -D daemon takes the descriptors its parent
// passed on from fd 4 (after the pipe, fd 3): the listening socket is held
// with its name, a regular file is closed with a note, and the variables
// are gone. It runs in a child process, whose descriptors the test sets.
func TestFromEnvDaemonPath(t *testing.T) {
	if os.Getenv(fromEnvChild) != "" {
		in := FromEnv(false)
		var left []string
		for _, k := range listenVars {
			if _, ok := os.LookupEnv(k); ok {
				left = append(left, k)
			}
		}
		out := map[string]any{"names": names(in.Sockets), "notes": in.Notes, "left": left}
		if len(in.Sockets) == 1 {
			out["fd"], out["listening"] = in.Sockets[0].FD, Listening(in.Sockets[0].FD)
		}
		_ = json.NewEncoder(os.Stdout).Encode(out)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	pipeR, pipeW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pipeR.Close()
	defer pipeW.Close()
	plain, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFromEnvDaemonPath$")
	cmd.ExtraFiles = []*os.File{pipeW, lf, plain} // fds 3, 4, 5
	cmd.Env = append(os.Environ(), fromEnvChild+"=1", proc.EnvDaemonListen+"=2", "LISTEN_FDNAMES=web:junk")
	outB, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	line, _, _ := strings.Cut(string(outB), "\n")
	var got struct {
		Names     []string
		Notes     []string
		Left      []string
		FD        int
		Listening bool
	}
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("child said %q: %v", outB, err)
	}
	if len(got.Names) != 1 || got.Names[0] != "web" || got.FD != 4 || !got.Listening {
		t.Errorf("took %q (fd %d, listening %v), want the listening socket web at fd 4", got.Names, got.FD, got.Listening)
	}
	if len(got.Notes) != 1 || !strings.Contains(got.Notes[0], "descriptor 5 (junk)") {
		t.Errorf("notes %q, want one for descriptor 5 (junk)", got.Notes)
	}
	if len(got.Left) != 0 {
		t.Errorf("still set in the child: %q", got.Left)
	}
}

func names(socks []Socket) []string {
	var out []string
	for _, s := range socks {
		out = append(out, s.Name)
	}
	return out
}
