package haproxy

import (
	"bufio"
	"context"
	"errors"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// Fixtures in ../../../testdata/showinfo were recorded from HAProxy 2.6.12 (Debian
// 2.6.12-1+deb12u4) over its stats socket, except 1.7-synthetic.txt, which
// is hand-written in the shape of HAProxy 1.7's "show info".
// 2.6.12-stopping-interactive.txt was captured on a CLI session opened in
// "prompt" mode before SIGUSR1 (the soft-stopped process refuses new stats
// connections), so it ends with the "> " prompt.
const statsFixtureDir = "../../../testdata/showinfo"

// statsStrip returns info without Raw, for comparing the typed fields.
func statsStrip(info Info) Info {
	info.Raw = nil
	return info
}

func TestParseShowInfoFixtures(t *testing.T) {
	hap26 := Info{
		Name:        "HAProxy",
		Version:     "2.6.12-1+deb12u4",
		ReleaseDate: "2026/10/17",
		Node:        "vm",
		Pid:         2736,
		Nbthread:    2,
		Nbproc:      1,
		MaxConn:     100,
	}
	with := func(base Info, f func(*Info)) Info {
		f(&base)
		return base
	}
	tests := []struct {
		file    string
		want    Info
		rawLen  int    // number of distinct keys expected in Raw
		wantErr string // substring of the error, if an error is expected
	}{
		{
			file: "2.6.12-idle.txt",
			want: with(hap26, func(i *Info) {
				i.Uptime = 16 * time.Second
				i.CumConns, i.CumReq = 2, 2
				i.Jobs = 3
			}),
			rawLen: 69,
		},
		{
			file: "2.6.12-conns5.txt",
			want: with(hap26, func(i *Info) {
				i.Uptime = 17 * time.Second
				i.CurrConns = 5
				i.CumConns, i.CumReq = 8, 8
				i.ConnRate = 2
				i.Jobs = 8
			}),
			rawLen: 69,
		},
		{
			file: "2.6.12-stopping-interactive.txt",
			want: with(hap26, func(i *Info) {
				i.Uptime = 29 * time.Second
				i.CurrConns = 6
				i.CumConns, i.CumReq = 11, 11
				i.Jobs = 7
				i.Stopping = true
			}),
			rawLen: 69,
		},
		{
			file: "1.7-synthetic.txt",
			want: Info{
				Name:        "HAProxy",
				Version:     "1.7.11",
				ReleaseDate: "2018/04/30",
				Node:        "lb1.example.net",
				Pid:         12345,
				Uptime:      3*24*time.Hour + 4*time.Hour + 5*time.Minute + 6*time.Second,
				Nbproc:      1,
				MaxConn:     4000,
				CurrConns:   17,
				CumConns:    982341,
				CumReq:      1204512,
				ConnRate:    9,
			},
			rawLen: 51,
		},
		{
			file:    "2.6.12-unknown-command.txt",
			wantErr: `unexpected answer "Unknown command, but maybe one of the following ones is a better match:\n  show e..."`,
		},
	}

	entries, err := os.ReadDir(statsFixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	covered := make(map[string]bool)
	for _, tt := range tests {
		covered[tt.file] = true
	}
	for _, e := range entries {
		if !covered[e.Name()] {
			t.Errorf("fixture %s has no entry in TestParseShowInfoFixtures", e.Name())
		}
	}

	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(statsFixtureDir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseShowInfo(string(data))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseShowInfo() = %+v, nil; want error containing %q", statsStrip(got), tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseShowInfo() error = %q, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseShowInfo() error = %v", err)
			}
			if !reflect.DeepEqual(statsStrip(got), tt.want) {
				t.Errorf("ParseShowInfo() =\n%+v\nwant\n%+v", statsStrip(got), tt.want)
			}
			if len(got.Raw) != tt.rawLen {
				t.Errorf("len(Raw) = %d, want %d", len(got.Raw), tt.rawLen)
			}
			// Every "Key: value" line of the fixture is in Raw.
			for line := range strings.Lines(string(data)) {
				k, v, ok := strings.Cut(line, ":")
				if !ok {
					continue
				}
				k, v = strings.TrimSpace(k), strings.TrimSpace(v)
				if gotV, ok := got.Raw[k]; !ok || gotV != v {
					t.Errorf("Raw[%q] = %q, %v; want %q", k, gotV, ok, v)
				}
			}
		})
	}
}

func TestParseShowInfoTolerance(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Info
		raw  map[string]string // entries that must be present in Raw
	}{
		{
			name: "CRLF and blank lines",
			in:   "\r\nName: HAProxy\r\n\r\nPid: 42\r\nUptime_sec: 7\r\n\r\nCurrConns: 3\r\n",
			want: Info{Name: "HAProxy", Pid: 42, Uptime: 7 * time.Second, CurrConns: 3},
			raw:  map[string]string{"Name": "HAProxy", "Pid": "42", "CurrConns": "3"},
		},
		{
			name: "only Pid",
			in:   "Pid: 1\n",
			want: Info{Pid: 1},
		},
		{
			name: "only Name, no trailing newline",
			in:   "Name: HAProxy",
			want: Info{Name: "HAProxy"},
		},
		{
			name: "lines without colon and unknown fields",
			in:   "garbage line\nName: HAProxy\n> \nSomeFutureField: 9\nPid: 5\n",
			want: Info{Name: "HAProxy", Pid: 5},
			raw:  map[string]string{"SomeFutureField": "9"},
		},
		{
			name: "value containing colons and spaces in keys",
			in:   "Name: HAProxy\nPid: 5\nUnstoppable Jobs: 2\ndescription: a: b: c\nnode: \n",
			want: Info{Name: "HAProxy", Pid: 5},
			raw:  map[string]string{"Unstoppable Jobs": "2", "description": "a: b: c", "node": ""},
		},
		{
			name: "first occurrence wins",
			in:   "Name: HAProxy\nPid: 5\nPid: 6\n",
			want: Info{Name: "HAProxy", Pid: 5},
		},
		{
			name: "unparsable and negative numbers are zero",
			in:   "Name: HAProxy\nPid: -3\nCurrConns: lots\nNbthread: 2.5\nUptime_sec: -10\nStopping: yes\n",
			want: Info{Name: "HAProxy"},
		},
		{
			name: "uint64 counters saturate",
			in:   "Name: HAProxy\nCumConns: 18446744073709551615\nCumReq: 99999999999999999999999\nUptime_sec: 9223372036854775807\n",
			want: Info{Name: "HAProxy", CumConns: math.MaxInt64, CumReq: math.MaxInt64, Uptime: time.Duration(math.MaxInt64)},
		},
		{
			name: "Uptime fallback without Uptime_sec",
			in:   "Name: HAProxy\nUptime: 1d 2h03m04s\n",
			want: Info{Name: "HAProxy", Uptime: 26*time.Hour + 3*time.Minute + 4*time.Second},
		},
		{
			name: "Uptime_sec preferred over Uptime",
			in:   "Name: HAProxy\nUptime: 1d 2h03m04s\nUptime_sec: 5\n",
			want: Info{Name: "HAProxy", Uptime: 5 * time.Second},
		},
		{
			name: "Stopping",
			in:   "Name: HAProxy\nStopping: 1\n",
			want: Info{Name: "HAProxy", Stopping: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseShowInfo(tt.in)
			if err != nil {
				t.Fatalf("ParseShowInfo(%q) error = %v", tt.in, err)
			}
			if !reflect.DeepEqual(statsStrip(got), tt.want) {
				t.Errorf("ParseShowInfo(%q) =\n%+v\nwant\n%+v", tt.in, statsStrip(got), tt.want)
			}
			for k, v := range tt.raw {
				if gotV, ok := got.Raw[k]; !ok || gotV != v {
					t.Errorf("Raw[%q] = %q, %v; want %q", k, gotV, ok, v)
				}
			}
		})
	}
}

func TestParseShowInfoErrors(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := []struct {
		name string
		in   string
		want string // exact error text
	}{
		{"empty", "", `show info: unexpected answer ""`},
		{"blank lines", "\n\r\n\n", `show info: unexpected answer ""`},
		{"unknown command", "Unknown command.\n\n", `show info: unexpected answer "Unknown command."`},
		{"permission denied", "Permission denied\n\n", `show info: unexpected answer "Permission denied"`},
		{"key-value without Name or Pid", "Version: 2.6\nCurrConns: 1\n", `show info: unexpected answer "Version: 2.6\nCurrConns: 1"`},
		{"case matters", "name: HAProxy\npid: 4\n", `show info: unexpected answer "name: HAProxy\npid: 4"`},
		{"truncated", long, `show info: unexpected answer "` + strings.Repeat("x", 80) + `..."`},
		{"truncated on rune boundary", strings.Repeat("x", 79) + "é and more", `show info: unexpected answer "` + strings.Repeat("x", 79) + `..."`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseShowInfo(tt.in)
			if err == nil {
				t.Fatalf("ParseShowInfo(%q) = %+v, nil; want error %q", tt.in, statsStrip(got), tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("ParseShowInfo(%q) error = %q, want %q", tt.in, err, tt.want)
			}
			if got.Raw != nil || got.Pid != 0 {
				t.Errorf("ParseShowInfo(%q) on error = %+v, want zero Info", tt.in, got)
			}
		})
	}
}

// statsSockPath returns a unix socket path in a per-test temporary
// directory, staying under the ~108-byte sun_path limit.
func statsSockPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(testutil.ShortDir(t), "s.sock")
}

// statsServe starts a unix socket server at a fresh path that hands every
// connection to handle, and returns the path. The server stops with the test.
func statsServe(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	path := statsSockPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return path
}

// statsAnswer returns a handler that behaves like HAProxy's non-interactive
// CLI: read one command line, reply, close. Received lines go to got.
func statsAnswer(answer string, got chan<- string) func(net.Conn) {
	return func(c net.Conn) {
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return
		}
		if got != nil {
			got <- line
		}
		c.Write([]byte(answer))
	}
}

func TestQueryStatsAnswers(t *testing.T) {
	answer := strings.Repeat("Name: HAProxy\nPid: 1\n", 10000) // > one read buffer
	got := make(chan string, 1)
	path := statsServe(t, statsAnswer(answer, got))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	text, err := QueryStats(ctx, path, "show info")
	if err != nil {
		t.Fatalf("QueryStats() error = %v", err)
	}
	if text != answer {
		t.Errorf("QueryStats() returned %d bytes, want %d", len(text), len(answer))
	}
	if line := <-got; line != "show info\n" {
		t.Errorf("server received %q, want %q", line, "show info\n")
	}
}

func TestQueryStatsNoContextDeadline(t *testing.T) {
	path := statsServe(t, statsAnswer("ok\n", nil))
	text, err := QueryStats(context.Background(), path, "help")
	if err != nil || text != "ok\n" {
		t.Fatalf("QueryStats() = %q, %v; want %q, nil", text, err, "ok\n")
	}
}

func TestQueryStatsRejectsLineBreak(t *testing.T) {
	_, err := QueryStats(context.Background(), "/nonexistent.sock", "show info\nshutdown frontend fe")
	if err == nil || !strings.Contains(err.Error(), "line break") {
		t.Fatalf("QueryStats() error = %v, want a line break error", err)
	}
}

func TestQueryStatsSlowServer(t *testing.T) {
	release := make(chan struct{})
	defer close(release) // before the server's Cleanup waits for it
	path := statsServe(t, func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
		c.Write([]byte("Name: HAProxy\n")) // partial answer, then stall
		<-release
	})

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	text, err := QueryStats(ctx, path, "show info")
	elapsed := time.Since(start)
	if err == nil {
		t.Fatalf("QueryStats() = %q, nil; want a deadline error", text)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("QueryStats() error = %v, want it to match context.DeadlineExceeded and os.ErrDeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("QueryStats() error = %q, want it to mention %s", err, path)
	}
	if elapsed > 3*time.Second {
		t.Errorf("QueryStats() took %v, want about 100ms", elapsed)
	}
}

func TestQueryStatsCancel(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	path := statsServe(t, func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
		<-release
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := QueryStats(ctx, path, "show info")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("QueryStats() error = %v, want context.Canceled", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("QueryStats() took %v after cancel, want prompt return", elapsed)
	}
}

func TestQueryStatsDialErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	t.Run("missing socket", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "missing.sock")
		_, err := QueryStats(ctx, path, "show info")
		if err == nil {
			t.Fatal("QueryStats() error = nil, want error")
		}
		if !strings.Contains(err.Error(), "stats socket "+path+": ") {
			t.Errorf("QueryStats() error = %q, want it to start with the path", err)
		}
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("QueryStats() error = %v, want errors.Is(err, os.ErrNotExist)", err)
		}
	})

	t.Run("regular file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "file.sock")
		if err := os.WriteFile(path, []byte("not a socket"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := QueryStats(ctx, path, "show info")
		if err == nil {
			t.Fatal("QueryStats() error = nil, want error")
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("QueryStats() error = %q, want it to mention %s", err, path)
		}
	})

	// What a soft-stopped HAProxy leaves behind: the socket file stays but
	// nothing listens on it any more.
	t.Run("stale socket file", func(t *testing.T) {
		path := statsSockPath(t)
		testutil.StaleSocket(t, path)
		_, err := QueryStats(ctx, path, "show info")
		if err == nil {
			t.Fatal("QueryStats() error = nil, want error")
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("QueryStats() error = %q, want it to mention %s", err, path)
		}
	})
}

func TestShowInfoStatsSocket(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(statsFixtureDir, "2.6.12-idle.txt"))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	path := statsServe(t, statsAnswer(string(data), got))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	info, err := ShowInfo(ctx, path)
	if err != nil {
		t.Fatalf("ShowInfo() error = %v", err)
	}
	if info.Pid != 2736 || info.Version != "2.6.12-1+deb12u4" || info.Uptime != 16*time.Second {
		t.Errorf("ShowInfo() = %+v, want Pid 2736, Version 2.6.12-1+deb12u4, Uptime 16s", statsStrip(info))
	}
	if line := <-got; line != "show info\n" {
		t.Errorf("server received %q, want %q", line, "show info\n")
	}

	// An error answer is reported with the socket path and the answer.
	bad := statsServe(t, statsAnswer("Unknown command.\n\n", nil))
	_, err = ShowInfo(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "Unknown command.") {
		t.Errorf("ShowInfo() error = %v, want it to mention %s and the answer", err, bad)
	}
}

func FuzzParseShowInfo(f *testing.F) {
	entries, err := os.ReadDir(statsFixtureDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(statsFixtureDir, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	f.Add("")
	f.Add("Pid: -1\r\n")
	f.Add("Name:\nUptime: 9999999999d 99999999999h99m99s\n")
	f.Add("Pid: 18446744073709551616\nUptime_sec: 18446744073709551615\n")
	f.Fuzz(func(t *testing.T, text string) {
		info, err := ParseShowInfo(text)
		if err != nil {
			if info.Raw != nil {
				t.Errorf("error %v with non-nil Raw", err)
			}
			return
		}
		if info.Pid < 0 {
			t.Errorf("Pid = %d, want >= 0", info.Pid)
		}
		if info.Uptime < 0 || info.Nbthread < 0 || info.Nbproc < 0 {
			t.Errorf("negative Uptime/Nbthread/Nbproc in %+v", statsStrip(info))
		}
		if info.Raw == nil {
			t.Fatal("Raw is nil")
		}
		_, hasName := info.Raw["Name"]
		_, hasPid := info.Raw["Pid"]
		if !hasName && !hasPid {
			t.Errorf("nil error without Name or Pid: %v", info.Raw)
		}
	})
}
