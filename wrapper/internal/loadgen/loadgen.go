// Package loadgen is the load generator of the tests and the benchmark:
// standard library only, loopback only, bounded in time by its context and,
// optionally, in count.
package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Options shape the load.
type Options struct {
	Addr      string        // host:port on loopback
	Workers   int           // concurrent clients opening a new connection per request
	KeepAlive int           // extra clients that keep one connection open and reuse it
	Timeout   time.Duration // per request (default 2s)
	// MaxPerClient bounds the requests of each client (0: until ctx ends).
	MaxPerClient int
	// Done, when set, counts finished requests as they finish, for a caller
	// that waits for the load to make progress.
	Done *atomic.Int64
}

// Result counts what happened.
type Result struct {
	Sent, Failed int
	Errors       map[string]int // failure kind -> count (refused, reset, timeout, eof, status, other)
	Samples      []string       // the first failures, with their time, for a failure message
}

const maxSamples = 10

func (r Result) String() string {
	var kinds []string
	for k, v := range r.Errors {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("%d sent, %d failed %v", r.Sent, r.Failed, kinds)
}

// Run sends requests until ctx ends and returns the counts.
func Run(ctx context.Context, o Options) Result {
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	res := Result{Errors: map[string]int{}}
	record := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		res.Sent++
		if o.Done != nil {
			o.Done.Add(1)
		}
		if err != nil {
			res.Failed++
			res.Errors[Classify(err)]++
			if len(res.Samples) < maxSamples {
				res.Samples = append(res.Samples, time.Now().Format("15:04:05.000")+" "+err.Error())
			}
		}
	}
	// client runs one client's requests: every failure counts, also one in
	// flight when ctx ends (nothing stops the server under it then).
	client := func(request func() error, gap time.Duration) {
		defer wg.Done()
		for n := 0; ctx.Err() == nil && (o.MaxPerClient == 0 || n < o.MaxPerClient); n++ {
			record(request())
			Pause(ctx, gap)
		}
	}
	for i := 0; i < o.Workers; i++ {
		wg.Add(1)
		go client(func() error { return oneShot(o.Addr, o.Timeout) }, 0)
	}
	for i := 0; i < o.KeepAlive; i++ {
		tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: o.Timeout}
		wg.Add(1)
		go client(func() error { return keepAliveRequest(c, o.Addr) }, 50*time.Millisecond)
	}
	wg.Wait()
	return res
}

// Pause waits d, or less when ctx ends.
func Pause(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// oneShot: a new TCP connection, one HTTP/1.1 request with Connection: close,
// the whole answer read.
func oneShot(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: loadgen\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	return readOK(http.ReadResponse(bufio.NewReader(c), nil))
}

// readOK reads a whole answer and wants a 200.
func readOK(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// keepAliveRequest reuses the client's connection. A keep-alive connection
// closed by a soft-stopping haproxy between two requests is retried once on a
// new connection, as every HTTP client does for an idempotent request.
func keepAliveRequest(c *http.Client, addr string) error {
	return readOK(c.Get("http://" + addr + "/"))
}

// Classify names a failure.
func Classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case strings.HasPrefix(err.Error(), "status "):
		return "status"
	}
	return "other"
}

// Background is a load running in the background, for a test that acts
// while it runs.
type Background struct {
	done   atomic.Int64
	cancel context.CancelFunc
	res    chan Result
	once   sync.Once
	final  Result
}

// Start runs workers clients (a new connection per request) against addr for
// at most maxDur.
func Start(addr string, workers int, maxDur time.Duration) *Background {
	ctx, cancel := context.WithTimeout(context.Background(), maxDur)
	b := &Background{cancel: cancel, res: make(chan Result, 1)}
	o := Options{Addr: addr, Workers: workers, Timeout: 5 * time.Second, Done: &b.done}
	go func() { b.res <- Run(ctx, o) }()
	return b
}

// WaitMore waits until n more requests have finished (failed ones count),
// at most timeout.
func (b *Background) WaitMore(n int64, timeout time.Duration) error {
	target := b.done.Load() + n
	deadline := time.Now().Add(timeout)
	for b.done.Load() < target {
		if time.Now().After(deadline) {
			return fmt.Errorf("load: %d requests finished, %d awaited within %s", b.done.Load(), target, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// Stop ends the load (once) and returns its counts.
func (b *Background) Stop() Result {
	b.once.Do(func() {
		b.cancel()
		b.final = <-b.res
	})
	return b.final
}
