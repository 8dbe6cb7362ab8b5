package systemdtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/loadgen"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// Helpers not tied to a boot: files, free ports, HTTP requests and the
// load generator.

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

var httpClient = &http.Client{
	Timeout:   3 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
}

// HTTPGet does one GET on 127.0.0.1:port with a new connection.
func HTTPGet(port int) (int, string, error) {
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// WaitHTTP polls until 127.0.0.1:port answers 200 with a body containing want.
func WaitHTTP(t *testing.T, port int, want string, timeout time.Duration) {
	t.Helper()
	err := testutil.Poll(timeout, 50*time.Millisecond, func() (bool, string) {
		code, body, err := HTTPGet(port)
		if err != nil {
			return false, err.Error()
		}
		return code == 200 && strings.Contains(body, want), fmt.Sprintf("status %d body %q", code, body)
	})
	if err != nil {
		t.Fatalf("HTTP on 127.0.0.1:%d: %v", port, err)
	}
}

// LoadGen runs the project's load generator (new connection per request)
// in the background, bounded in time and count.
type LoadGen struct {
	done   atomic.Int64
	cancel context.CancelFunc
	res    chan loadgen.Result
}

// StartLoad starts workers against 127.0.0.1:port for at most maxDur and at
// most maxPerWorker requests each.
func StartLoad(port, workers int, maxDur time.Duration, maxPerWorker int) *LoadGen {
	ctx, cancel := context.WithTimeout(context.Background(), maxDur)
	l := &LoadGen{cancel: cancel, res: make(chan loadgen.Result, 1)}
	o := loadgen.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Workers: workers, Timeout: 5 * time.Second,
		MaxPerClient: maxPerWorker, Done: &l.done}
	go func() { l.res <- loadgen.Run(ctx, o) }()
	return l
}

// Done is the number of requests finished so far.
func (l *LoadGen) Done() int64 { return l.done.Load() }

// Stop stops the workers and returns the counts and the first errors.
func (l *LoadGen) Stop() (ok, failed int64, errs []string) {
	l.cancel()
	r := <-l.res
	return int64(r.Sent - r.Failed), int64(r.Failed), r.Samples
}
