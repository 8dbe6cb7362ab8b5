package sdnotify

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// captureLog sends logx's lines to a buffer for the rest of the test.
func captureLog(t *testing.T) *testutil.Buffer {
	t.Helper()
	buf := &testutil.Buffer{}
	old := logx.L
	logx.L = logx.New(buf, logx.Debug)
	t.Cleanup(func() { logx.L = old })
	return buf
}

func TestNotifyPathAndAbstract(t *testing.T) {
	for _, addr := range []string{filepath.Join(testutil.ShortDir(t), "notify"), "@hsw-test-" + strconv.Itoa(int(time.Now().UnixNano()))} {
		c := testutil.ListenNotify(t, addr)
		n := New(addr)
		if !n.Reloading("reloading") {
			t.Fatalf("%s: Reloading not sent", addr)
		}
		got := testutil.ReadDatagram(t, c)
		lines := strings.Split(strings.TrimSpace(got), "\n")
		if len(lines) != 3 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") || lines[2] != "STATUS=reloading" {
			t.Fatalf("%s: RELOADING datagram = %q", addr, got)
		}
		usec, _ := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
		if now := MonotonicUsec(); usec <= 0 || usec > now {
			t.Fatalf("MONOTONIC_USEC=%d not a past CLOCK_MONOTONIC time (now %d)", usec, now)
		}
		n.Ready("a\nb", 42)
		if got := testutil.ReadDatagram(t, c); got != "READY=1\nMAINPID=42\nSTATUS=a b\n" {
			t.Fatalf("READY datagram = %q", got)
		}
		if got, want := n.Sent(), 2; got != want {
			t.Fatalf("Sent() = %d, want %d", got, want)
		}
	}
}

func TestNotifyNowhereWarnsOnce(t *testing.T) {
	buf := captureLog(t)
	n := New(filepath.Join(t.TempDir(), "nobody"))
	if n.Status("x") || n.Status("y") {
		t.Fatal("sent to a socket nobody listens on")
	}
	if !logx.L.Flush(5 * time.Second) {
		t.Fatal("the log did not drain within 5s")
	}
	if c := strings.Count(buf.String(), "NOTIFY_SOCKET="); c != 1 {
		t.Fatalf("%d warnings, want 1: %q", c, buf.String())
	}
	if !n.Warned() {
		t.Fatal("Warned() = false after the warning")
	}
	if New("").Status("x") {
		t.Fatal("sent without NOTIFY_SOCKET")
	}
}

func TestNoReadyAfterStopping(t *testing.T) {
	c := testutil.ListenNotify(t, filepath.Join(testutil.ShortDir(t), "notify"))
	n := New(c.LocalAddr().String())
	if !n.Stopping("bye") {
		t.Fatal("Stopping not sent")
	}
	if got := testutil.ReadDatagram(t, c); got != "STOPPING=1\nSTATUS=bye\n" {
		t.Fatalf("STOPPING datagram = %q", got)
	}
	if n.Ready("x", 1) || n.Reloading("x") {
		t.Fatal("READY=1 or RELOADING=1 sent after STOPPING=1")
	}
	if !n.Status("still here") {
		t.Fatal("STATUS= not sent after STOPPING=1")
	}
	if got := testutil.ReadDatagram(t, c); got != "STATUS=still here\n" {
		t.Fatalf("datagram after STOPPING=1 = %q, want only the STATUS= one", got)
	}
}

func TestWatchdogInterval(t *testing.T) {
	tests := []struct {
		usec       int64
		wpid, mine int
		want       time.Duration
	}{
		{0, 0, 10, 0},
		{2_000_000, 0, 10, time.Second},
		{2_000_000, 10, 10, time.Second},
		{2_000_000, 11, 10, 0}, // meant for another process
	}
	for _, tt := range tests {
		if got := WatchdogInterval(tt.usec, tt.wpid, tt.mine); got != tt.want {
			t.Errorf("WatchdogInterval(%d, %d, %d) = %s, want %s", tt.usec, tt.wpid, tt.mine, got, tt.want)
		}
	}
}
