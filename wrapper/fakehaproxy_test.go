package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/listeners"
)

// The fake haproxy, for what the real one cannot show: haproxy 1.7's -Ds
// mode and readiness pipe, crashes, hangs and odd output. Behaviour comes from
// the environment (the wrapper passes its own on):
//
//	FAKE_VERSION   "haproxy -v" output (default a 1.7.11 banner)
//	FAKE_CHECK_RC  exit code of "haproxy -c" (default 0)
//	FAKE_MODE      serve (default), crash (exit 3 after FAKE_DELAY), hang (never ready), exit (exit 2 at once),
//	               stubborn (serves, ignores SIGTERM and SIGINT)
//	FAKE_MODE_FILE a file whose content, when it exists, replaces FAKE_MODE at each start (one generation fails)
//	FAKE_LOG       file that gets one JSON line per start: argv and what the environment held
//	FAKE_SOCKS_LOG file that gets one JSON line per ready start of a version >= 2: the sockets it
//	               took with -x and the one it listens on
//
// A version >= 2 takes its sockets with -x as haproxy does (keeping a
// 127.0.0.1 TCP listener among them instead of binding one) and answers
// "_getsocks" on its stats sockets with its listener: with listener options
// up to 2.2, zero from 2.3 on (fakeOpts).
//
// Like the real releases (SPEC §7): a version <= 1.7 refuses -x (usage, exit
// 1); 1.5.0-1.5.18 and 1.6.x never touch HAPROXY_WRAPPER_FD (it closes only
// when they exit); 1.5.19+ and 1.7 close it once started.
type fakeStart struct {
	Pid          int      `json:"pid"`
	Args         []string `json:"args"`
	WrapperFD    string   `json:"wrapper_fd"`
	NotifySocket bool     `json:"notify_socket"`
	Watchdog     bool     `json:"watchdog"`
}

// fakeSocks is what a fake haproxy >= 1.8 did with listening sockets
// (FAKE_SOCKS_LOG): the sockets it took with -x (inode and the options
// field, as haproxy's sock_get_old_sockets reads them) and the inode of the
// TCP socket it listens on.
type fakeSocks struct {
	Pid      int        `json:"pid"`
	Received []fakeSock `json:"received,omitempty"`
	Listener uint64     `json:"listener"`
}

type fakeSock struct {
	Ino  uint64 `json:"ino"`
	Opts uint32 `json:"opts"`
}

// fakeOpts is the options field the fake sends with its listener: 1.8-2.2
// send the listener's options (here LI_O_UNLIMITED|LI_O_V4V6, any value
// the receiver must get back unchanged), 2.3 and later zero.
func fakeOpts() uint32 {
	if major, minor, _ := fakeVersion(); major == 1 || major == 2 && minor <= 2 {
		return 0x0100 | 0x0800
	}
	return 0
}

func fakeHAProxy(args []string) int {
	for _, a := range args {
		switch a {
		case "-v", "-vv":
			v := os.Getenv("FAKE_VERSION")
			if v == "" {
				v = "HA-Proxy version 1.7.11 2018/04/30\nCopyright 2000-2018 Willy Tarreau <willy@haproxy.org>\n"
			}
			fmt.Print(v)
			return 0
		case "-c":
			rc, _ := strconv.Atoi(os.Getenv("FAKE_CHECK_RC"))
			if rc != 0 {
				fmt.Println("[ALERT]    (1) : config : fake check failed on purpose")
			} else {
				fmt.Println("Configuration file is valid")
			}
			return rc
		}
	}
	start := fakeStart{Pid: os.Getpid(), Args: args, WrapperFD: os.Getenv("HAPROXY_WRAPPER_FD")}
	socksRec := fakeSocks{Pid: os.Getpid()}
	_, start.NotifySocket = os.LookupEnv("NOTIFY_SOCKET")
	_, start.Watchdog = os.LookupEnv("WATCHDOG_USEC")
	if major, _, _ := fakeVersion(); major >= 2 {
		// -x, as haproxy >= 1.8: take the old sockets, keep a TCP
		// listener among them, close the rest; a failed exchange ends
		// the start with haproxy's alert.
		for i := 0; i+1 < len(args); i++ {
			if args[i] != "-x" {
				continue
			}
			socks, err := listeners.Fetch(context.Background(), args[i+1])
			if err != nil && !errors.Is(err, listeners.ErrNoSockets) {
				fmt.Fprintf(os.Stderr, "[ALERT] fake: %v\n[ALERT] Failed to get the sockets from the old process!\n", err)
				return 1
			}
			for _, k := range socks {
				socksRec.Received = append(socksRec.Received, fakeSock{Ino: k.Ino(), Opts: k.Opts})
				if fakeListener == nil && strings.HasPrefix(k.Describe(), "tcp 127.0.0.1:") {
					if ln, err := net.FileListener(os.NewFile(uintptr(k.FD), "inherited")); err == nil {
						fakeListener = ln
					}
				}
				k.Close()
			}
		}
	}
	appendJSONLine(os.Getenv("FAKE_LOG"), start)
	mode := os.Getenv("FAKE_MODE")
	if p := os.Getenv("FAKE_MODE_FILE"); p != "" {
		if b, err := os.ReadFile(p); err == nil {
			mode = strings.TrimSpace(string(b))
		}
	}
	major, minor, _ := fakeVersion()
	if major == 1 && minor <= 7 {
		for _, a := range args {
			if a == "-x" {
				fmt.Fprintln(os.Stderr, "Usage : haproxy [-f <cfgfile|cfgdir>]* [ -vdVD ] [ -n <maxconn> ] [ -N <maxpconn> ]\n        [ -p <pidfile> ] [ -m <max megs> ] [ -C <dir> ] [-- <cfgfile>*]")
				return 1
			}
		}
	}
	if mode == "exit" {
		fmt.Fprintln(os.Stderr, "[ALERT] fake: cannot bind socket")
		return 2
	}
	// The package's signals channel has caught USR1, TERM and INT since
	// init (main.go), like haproxy's handlers that exist from its start:
	// a signal sent early is not lost.
	sigs := signals
	// Like haproxy: tell the old pids to finish (-sf) once "bound".
	for i := 0; i < len(args); i++ {
		if args[i] == "-sf" {
			for j := i + 1; j < len(args) && !strings.HasPrefix(args[j], "-"); j++ {
				if p, err := strconv.Atoi(args[j]); err == nil {
					_ = syscall.Kill(p, syscall.SIGUSR1)
				}
			}
		}
	}
	if mode == "stubborn" { // ignores the stop signals
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
	}
	if mode != "hang" {
		fakeReady(args)
		if fakeListener != nil {
			socksRec.Listener = fakeInode(fakeListener)
			appendJSONLine(os.Getenv("FAKE_SOCKS_LOG"), socksRec)
		}
	}
	var crash <-chan time.Time
	if mode == "crash" {
		d, _ := time.ParseDuration(os.Getenv("FAKE_DELAY"))
		crash = time.After(d)
	}
	for {
		select {
		case <-crash:
			return 3
		case sig := <-sigs:
			switch sig {
			case syscall.SIGUSR1:
				return 0
			case syscall.SIGTERM, syscall.SIGINT:
				signal.Reset(sig)
				_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal))
				time.Sleep(time.Second)
				return 1
			}
			// SIGHUP, SIGUSR2: haproxy goes on (it dumps state on SIGHUP).
		}
	}
}

// fakeReady announces readiness the way the wrapper expects it: -Ds mode
// writes the pid file and closes HAPROXY_WRAPPER_FD; -db mode answers "show
// info" on the stats socket of the wrapper's extra -f file.
func fakeReady(args []string) {
	legacy := false
	for _, a := range args {
		legacy = legacy || a == "-Ds"
	}
	if !legacy && fakeListener == nil {
		// A listener of its own (unless it took one with -x) (loopback, any port), bound before the
		// stats sockets answer, as a real configuration has: the wrapper
		// refuses a generation whose only listener is its readiness socket.
		if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
			fakeListener = ln
		}
	}
	for i, a := range args {
		switch {
		case a == "-Ds":
			legacy = true
		case a == "-p" && i+1 < len(args):
			_ = os.WriteFile(args[i+1], []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
		case a == "-f" && i+1 < len(args):
			if b, err := os.ReadFile(args[i+1]); err == nil {
				for _, l := range strings.Split(string(b), "\n") {
					f := strings.Fields(l)
					if len(f) >= 3 && f[0] == "stats" && f[1] == "socket" {
						go fakeStatsSocket(f[2])
					}
				}
			}
		}
	}
	major, minor, patch := fakeVersion()
	pipe := major > 1 || minor >= 7 || minor == 5 && patch >= 19
	if legacy && pipe {
		if fd, err := strconv.Atoi(os.Getenv("HAPROXY_WRAPPER_FD")); err == nil {
			syscall.Close(fd)
		}
	}
}

// fakeVersion is the release FAKE_VERSION announces (default 1.7.11).
func fakeVersion() (major, minor, patch int) {
	v := os.Getenv("FAKE_VERSION")
	if v == "" {
		return 1, 7, 11
	}
	m := regexp.MustCompile(`version (\d+)\.(\d+)(?:\.(\d+))?`).FindStringSubmatch(v)
	if m == nil {
		return 2, 6, 0
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	patch, _ = strconv.Atoi(m[3])
	return major, minor, patch
}

// fakeListener keeps the fake's listener open for its whole life.
var fakeListener net.Listener

func fakeStatsSocket(path string) {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 256)
		n, _ := c.Read(buf)
		if strings.HasPrefix(string(buf[:n]), listeners.Request+"\n") {
			fakeGetsocks(c.(*net.UnixConn))
			continue
		}
		fmt.Fprintf(c, "Name: HAProxy\nVersion: 2.6.0-fake\nPid: %d\nCurrConns: 0\n\n", os.Getpid())
		c.Close()
	}
}

// fakeGetsocks answers "_getsocks" as haproxy does: its listener, with the
// options field of its release (fakeOpts); nothing when it has none.
func fakeGetsocks(c *net.UnixConn) {
	defer c.Close()
	if fakeListener == nil {
		return
	}
	rc, err := fakeListener.(*net.TCPListener).SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = listeners.Send(c, []listeners.Socket{{FD: int(fd), Opts: fakeOpts()}})
	})
}

// fakeInode is the inode of the fake's listening socket.
func fakeInode(ln net.Listener) uint64 {
	var ino uint64
	if rc, err := ln.(*net.TCPListener).SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { ino = listeners.Socket{FD: int(fd)}.Ino() })
	}
	return ino
}

// appendJSONLine appends v as one JSON line to the file at path ("": no
// file); readJSONLines reads them back.
func appendJSONLine(path string, v any) {
	if path == "" {
		return
	}
	b, _ := json.Marshal(v)
	if f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		f.Write(append(b, '\n'))
		f.Close()
	}
}

// readJSONLines reads the lines appendJSONLine wrote (none when the file
// does not exist); a line that does not parse fails the test.
func readJSONLines[T any](t *testing.T, path string) []T {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer fh.Close()
	var out []T
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
		}
		out = append(out, v)
	}
	return out
}
