package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/status"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// nobody is the uid (and gid) of the strangers in these tests.
const nobody = testutil.Nobody

// The test binary impersonates a stranger (run as nobody) when one of these
// variables names a socket: a client that sends one command line and
// prints the answer, or a server that answers every connection with
// "ok stranger" after printing "listening" (testutil.Squat).
const (
	envDial   = "HSW_CONTROL_TEST_DIAL"
	envCmd    = "HSW_CONTROL_TEST_CMD"
	envListen = "HSW_CONTROL_TEST_LISTEN"
)

func TestMain(m *testing.M) {
	if p := os.Getenv(envDial); p != "" {
		os.Exit(strangerClient(p, os.Getenv(envCmd)))
	}
	if p := os.Getenv(envListen); p != "" {
		os.Exit(testutil.Squat(p, "ok stranger"))
	}
	os.Exit(m.Run())
}

func strangerClient(path, cmd string) int {
	ans, err := oneLine(path, cmd)
	os.Stdout.WriteString(ans)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// oneLine sends cmd as one line to the server at path and returns all it
// answers before it closes the connection. A refusal may come before the
// line is written (EPIPE) or leave it unread (ECONNRESET): the answer is
// read all the same.
func oneLine(path, cmd string) (string, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil && !errors.Is(err, syscall.EPIPE) {
		return "", err
	}
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		return string(b), err
	}
	return string(b), nil
}

// asStranger runs the test binary as nobody with env set.
func asStranger(t *testing.T, env ...string) *exec.Cmd {
	t.Helper()
	c := testutil.AsNobody(t, "stranger")
	c.Env = append(os.Environ(), env...)
	return c
}

// sharedDir is a folder anyone may create a socket in, like /tmp.
func sharedDir(t *testing.T) string {
	t.Helper()
	d := testutil.ShortDir(t)
	if err := os.Chmod(d, 0o1777); err != nil {
		t.Fatal(err)
	}
	return d
}

func listen(t *testing.T, path string) *Server {
	t.Helper()
	s, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// nextRequest is the next request the server delivers, within 10 s.
func nextRequest(t *testing.T, s *Server) *Request {
	t.Helper()
	return testutil.Recv(t, s.Requests(), 10*time.Second, "request")
}

// ask runs Ask in a goroutine: its answer comes on the channel.
func ask(path, cmd string) <-chan string {
	ch := make(chan string, 1)
	go func() {
		ans, err := RequestText(path, cmd, 10*time.Second)
		if err != nil {
			ans = "ask: " + err.Error()
		}
		ch <- ans
	}()
	return ch
}

func answer(t *testing.T, ch <-chan string) string {
	t.Helper()
	return testutil.Recv(t, ch, 15*time.Second, "answer")
}

// TestServerAndClient: the socket is 0600; reload waits for the
// supervisor's Answer (once: a second one is dropped); status and status
// json carry the supervisor's report; anything else is refused by name.
func TestServerAndClient(t *testing.T) {
	path := filepath.Join(testutil.ShortDir(t), "ctl.sock")
	s := listen(t, path)
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode()&os.ModePerm, os.FileMode(0o600); got != want || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("control socket mode %v, want a socket with %v", fi.Mode(), want)
	}

	ch := ask(path, "reload")
	r := nextRequest(t, s)
	if r.Kind != Reload {
		t.Fatalf("request kind %v, want Reload", r.Kind)
	}
	select {
	case a := <-ch:
		t.Fatalf("the client had its answer %q before the reload settled", a)
	default:
	}
	r.Answer(true, "generation 2 serving\n(pid 42)")
	r.Answer(false, "a second answer")
	if got, want := answer(t, ch), "ok generation 2 serving (pid 42)\n"; got != want {
		t.Errorf("reload answer %q, want %q", got, want)
	}

	rep := status.Report{WrapperVersion: "9.9", WrapperPID: 4242, HAProxyVersion: "3.0.1", Reloads: 7, CurrConns: -1, ConnRate: -1}
	for _, cmd := range []string{"status", "status json"} {
		ch := ask(path, cmd)
		r := nextRequest(t, s)
		if r.Kind != Status || r.Snapshot == nil {
			t.Fatalf("%s: request kind %v, snapshot %v; want Status with a channel", cmd, r.Kind, r.Snapshot)
		}
		r.Snapshot <- rep
		got := answer(t, ch)
		if cmd == "status" {
			if want := rep.Text(); got != want {
				t.Errorf("status answer %q, want the report's text %q", got, want)
			}
			continue
		}
		var back status.Report
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Fatalf("status json answer %q: %v", got, err)
		}
		if back.WrapperPID != 4242 || back.Reloads != 7 || back.HAProxyVersion != "3.0.1" {
			t.Errorf("status json = %+v, want the report sent", back)
		}
	}

	for _, cmd := range []string{"restart", "reload now", "status xml"} {
		if got, want := answer(t, ask(path, cmd)), fmt.Sprintf("error unknown command %q\n", cmd); got != want {
			t.Errorf("%s: answer %q, want %q", cmd, got, want)
		}
	}
	select {
	case r := <-s.Requests():
		t.Errorf("an unknown command reached the supervisor as kind %v", r.Kind)
	default:
	}
}

// TestPeerCredentials: a client that is neither root nor the wrapper's
// user gets "error permission denied", and its command never reaches the
// supervisor; root (this test) is served.
func TestPeerCredentials(t *testing.T) {
	dir := sharedDir(t)
	path := filepath.Join(dir, "ctl.sock")
	s := listen(t, path)
	if err := os.Chmod(path, 0o777); err != nil { // the file mode is not what refuses it
		t.Fatal(err)
	}
	c := asStranger(t, envDial+"="+path, envCmd+"=reload")
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("stranger client: %v: %s (answer %q)", err, stderr.String(), out)
	}
	if got, want := string(out), "error permission denied\n"; got != want {
		t.Errorf("answer to uid %d: %q, want %q", nobody, got, want)
	}
	select {
	case r := <-s.Requests():
		t.Errorf("a stranger's reload reached the supervisor (kind %v)", r.Kind)
	default:
	}
	ch := ask(path, "reload")
	r := nextRequest(t, s)
	r.Answer(true, "served")
	if got := answer(t, ch); got != "ok served\n" {
		t.Errorf("root's reload: %q, want it served", got)
	}
}

// acceptedFirst tells whether the first connection ln accepts is one made
// after the call (so that none was queued before): it connects, writes a
// marker and compares.
func acceptedFirst(t *testing.T, ln *net.UnixListener) bool {
	t.Helper()
	c, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "marker\n"); err != nil {
		t.Fatal(err)
	}
	a, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	_ = a.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(a).ReadString('\n')
	return line == "marker\n"
}

// TestStrangersSocket: the client refuses a socket file owned by another
// user without connecting to it, a path that is not a socket, a server run
// by another user (though its file is root's), and a server that is not
// the unit's main process ($MAINPID).
func TestStrangersSocket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a socket to another user")
	}
	dir := sharedDir(t)
	path := filepath.Join(dir, "ctl.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if err := os.Chown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	_, err = RequestText(path, "reload", 5*time.Second)
	if !errors.Is(err, ErrStranger) || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("Ask on a socket owned by uid %d: %v, want ErrStranger naming the owner", nobody, err)
	}
	if !acceptedFirst(t, ln) {
		t.Errorf("the client connected to a stranger's socket before refusing it")
	}

	notSock := filepath.Join(dir, "file")
	if err := os.WriteFile(notSock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RequestText(notSock, "status", 5*time.Second); !errors.Is(err, ErrStranger) {
		t.Errorf("Ask on a plain file: %v, want ErrStranger", err)
	}

	// A stranger's server behind a root-owned file: SO_PEERCRED names it.
	served := filepath.Join(dir, "served.sock")
	srv := asStranger(t, envListen+"="+served)
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := testutil.Start(t, srv)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "listening\n" {
		t.Fatalf("stranger server: %q %v", line, err)
	}
	if err := os.Chown(served, 0, 0); err != nil {
		t.Fatal(err)
	}
	_, err = RequestText(served, "status", 5*time.Second)
	want := fmt.Sprintf("served by uid %d (pid %d)", nobody, p.Pid())
	if !errors.Is(err, ErrStranger) || !strings.Contains(err.Error(), want) {
		t.Errorf("Ask on a server run by uid %d: %v, want ErrStranger with %q", nobody, err, want)
	}

	// The wrapper's own server, but $MAINPID names another process.
	own := filepath.Join(testutil.ShortDir(t), "ctl.sock")
	listen(t, own)
	t.Setenv("MAINPID", strconv.Itoa(p.Pid()))
	_, err = RequestText(own, "status", 5*time.Second)
	if !errors.Is(err, ErrStranger) || !strings.Contains(err.Error(), "$MAINPID") {
		t.Errorf("Ask with MAINPID=%d on pid %d's server: %v, want ErrStranger naming $MAINPID", p.Pid(), os.Getpid(), err)
	}
}

// TestSquattedPath: Listen never takes over a socket another live process
// holds (ErrInUse, naming its pid and uid; the squatter keeps answering
// there), and replaces a leftover socket nobody answers on.
func TestSquattedPath(t *testing.T) {
	path := filepath.Join(sharedDir(t), "ctl.sock")
	sq := asStranger(t, envListen+"="+path)
	stdout, err := sq.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := testutil.Start(t, sq)
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "listening\n" {
		t.Fatalf("squatter: %q %v", line, err)
	}
	s, err := Listen(path)
	if !errors.Is(err, ErrInUse) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Listen on a live socket: %v, want ErrInUse", err)
	}
	if who := fmt.Sprintf("pid %d, uid %d", p.Pid(), nobody); !strings.Contains(err.Error(), who) {
		t.Errorf("ErrInUse does not name the squatter (%s): %v", who, err)
	}
	if got := squatterAnswer(t, path); got != "ok stranger\n" {
		t.Errorf("the squatter's socket at %s answers %q after Listen, want the squatter's answer", path, got)
	}

	// A leftover: the file stays, nobody listens.
	left := filepath.Join(testutil.ShortDir(t), "ctl.sock")
	testutil.StaleSocket(t, left)
	s = listen(t, left)
	ch := ask(left, "reload")
	nextRequest(t, s).Answer(true, "fresh")
	if got := answer(t, ch); got != "ok fresh\n" {
		t.Errorf("reload on a replaced leftover: %q", got)
	}
}

// squatterAnswer is what the server at path answers to one line.
func squatterAnswer(t *testing.T, path string) string {
	t.Helper()
	ans, err := oneLine(path, "status")
	if err != nil {
		t.Fatalf("asking the server at %s: %v (answer so far %q)", path, err, ans)
	}
	return ans
}

// TestBoundedAnswers: a line longer than 256 bytes is cut off without an
// answer and reaches nobody; a status the supervisor does not answer is
// "busy" after 5 s; the client reads 1 MiB at the most, and gives up on a
// server that does not answer when its context ends.
func TestBoundedAnswers(t *testing.T) {
	path := filepath.Join(testutil.ShortDir(t), "ctl.sock")
	s := listen(t, path)

	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "reload"+strings.Repeat(" ", 300)+"\n"); err != nil {
		t.Fatal(err)
	}
	// Closed with bytes unread, the server's end resets the connection.
	if b, err := io.ReadAll(c); len(b) != 0 || err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("a 300-byte line: answer %q, %v; want the connection closed without one", b, err)
	}
	select {
	case r := <-s.Requests():
		t.Errorf("a 300-byte line reached the supervisor as kind %v", r.Kind)
	default:
	}

	start := time.Now()
	ch := ask(path, "status")
	nextRequest(t, s) // never answered
	got := answer(t, ch)
	if want := "error the wrapper is busy or exiting\n"; got != want {
		t.Errorf("status nobody answers: %q, want %q", got, want)
	}
	if d := time.Since(start); d < 5*time.Second || d > 10*time.Second {
		t.Errorf("status nobody answers took %s, want 5 s", d)
	}

	// The client's side, against a server of the test's own.
	big := filepath.Join(testutil.ShortDir(t), "big.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: big, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		a, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer a.Close()
		_, _ = a.Write(make([]byte, 3<<20)) // ends when the client closes
	}()
	ans, err := RequestText(big, "status", 10*time.Second)
	if err != nil || len(ans) != 1<<20 {
		t.Errorf("Ask on a server sending 3 MiB: %d bytes, %v; want 1 MiB", len(ans), err)
	}

	mute := filepath.Join(testutil.ShortDir(t), "mute.sock")
	ml, err := net.ListenUnix("unix", &net.UnixAddr{Name: mute, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := Ask(ctx, mute, "status"); err == nil {
		t.Errorf("Ask on a server that never answers: no error")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Ask on a server that never answers took %s after a 200 ms context", d)
	}
}

// TestPauseQueuesForResume: during Pause no connection is accepted (it
// waits in the queue), a request already accepted is handed to Pause's
// handler, and after Resume the queued one is served.
func TestPauseQueuesForResume(t *testing.T) {
	path := filepath.Join(testutil.ShortDir(t), "ctl.sock")
	s := listen(t, path)
	first := ask(path, "reload")
	// The first request may be delivered before Pause or to its handler.
	handled := []*Request{nextRequest(t, s)}
	s.Pause(5*time.Second, func(r *Request) { handled = append(handled, r) })
	if len(handled) != 1 {
		t.Fatalf("%d requests before and during Pause, want 1", len(handled))
	}
	handled[0].Answer(true, "first")
	if got := answer(t, first); got != "ok first\n" {
		t.Errorf("first reload: %q", got)
	}
	second := ask(path, "reload")
	select {
	case r := <-s.Requests():
		t.Fatalf("a request (kind %v) was accepted while paused", r.Kind)
	case a := <-second:
		t.Fatalf("the second client had an answer while paused: %q", a)
	case <-time.After(300 * time.Millisecond):
		// Nothing may happen while paused: a bounded look is all there is.
	}
	s.Resume()
	r := nextRequest(t, s)
	r.Answer(true, "second")
	if got := answer(t, second); got != "ok second\n" {
		t.Errorf("second reload after Resume: %q", got)
	}
}
