package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// server is a loopback HTTP server answering every request with code.
func server(t *testing.T, code int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, "hello\n")
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// TestRunCountsEveryRequest: with MaxPerClient, each client sends exactly
// that many requests, every one counted in Sent and in Done, none failed.
func TestRunCountsEveryRequest(t *testing.T) {
	addr := server(t, 200)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var done atomic.Int64
	res := Run(ctx, Options{Addr: addr, Workers: 3, KeepAlive: 1, MaxPerClient: 5, Done: &done})
	if res.Sent != 20 || res.Failed != 0 {
		t.Fatalf("got %s, want 20 sent, 0 failed", res)
	}
	if done.Load() != 20 {
		t.Errorf("Done counted %d, want 20", done.Load())
	}
}

// TestRunCountsFailuresByKind: a refused port and a non-200 answer are
// failures, each named by its kind, with samples bounded.
func TestRunCountsFailuresByKind(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		addr, kind string
		n          int
	}{
		{closed, "refused", 3},
		{server(t, 503), "status", 12},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		res := Run(ctx, Options{Addr: tc.addr, Workers: 1, MaxPerClient: tc.n})
		cancel()
		if res.Sent != tc.n || res.Failed != tc.n || res.Errors[tc.kind] != tc.n {
			t.Errorf("%s: got %s, want %d sent, all failed as %s", tc.addr, res, tc.n, tc.kind)
		}
		if want := min(tc.n, maxSamples); len(res.Samples) != want {
			t.Errorf("%s: %d samples, want %d", tc.addr, len(res.Samples), want)
		}
	}
}

// TestRunEndsWithItsContext: without a count, the load ends when its
// context does.
func TestRunEndsWithItsContext(t *testing.T) {
	addr := server(t, 200)
	ctx, cancel := context.WithCancel(context.Background())
	var done atomic.Int64
	resc := make(chan Result, 1)
	go func() { resc <- Run(ctx, Options{Addr: addr, Workers: 2, Done: &done}) }()
	testutil.WaitFor(t, 10*time.Second, "10 requests to finish", func() bool { return done.Load() >= 10 })
	cancel()
	res := testutil.Recv(t, resc, 10*time.Second, "Run's result after its context's end")
	if res.Sent < 10 || res.Failed != 0 {
		t.Errorf("got %s, want at least 10 sent, 0 failed", res)
	}
}

// TestBackground: WaitMore sees progress, Stop ends the load once and
// returns the same counts every time.
func TestBackground(t *testing.T) {
	b := Start(server(t, 200), 2, 30*time.Second)
	if err := b.WaitMore(5, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	first := b.Stop()
	if first.Sent < 5 || first.Failed != 0 {
		t.Errorf("got %s, want at least 5 sent, 0 failed", first)
	}
	if again := b.Stop(); again.Sent != first.Sent {
		t.Errorf("a second Stop says %d sent, the first %d", again.Sent, first.Sent)
	}
}

// TestClassify names each kind of failure.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "refused"},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, "reset"},
		{fmt.Errorf("write: %w", syscall.EPIPE), "reset"},
		{os.ErrDeadlineExceeded, "timeout"},
		{io.ErrUnexpectedEOF, "eof"},
		{fmt.Errorf("read: %w", io.EOF), "eof"},
		{errors.New("status 503"), "status"},
		{errors.New("malformed HTTP response"), "other"},
	} {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}
