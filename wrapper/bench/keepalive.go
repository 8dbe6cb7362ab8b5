package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/loadgen"
)

// kaResult counts the keep-alive clients' requests. A request is "cut" when
// it was written on a reused keep-alive connection and the connection was
// closed (EOF, reset, broken pipe) before a single byte of the answer came:
// the race between a soft-stopping haproxy closing an idle connection and the
// client sending its next request on it. Raw connections, no retry (Go's
// http.Transport would silently retry an idempotent GET).
type kaResult struct {
	Sent, Cut, Other int
	Closes           int            // answers with Connection: close (a graceful end of the connection)
	Kinds            map[string]int // kinds of the other failures
}

const kaGap = 100 * time.Millisecond // pause between two requests of a client

// runKeepAlive runs n keep-alive clients until ctx ends.
func runKeepAlive(ctx context.Context, addr string, n int) kaResult {
	var mu sync.Mutex
	var wg sync.WaitGroup
	res := kaResult{Kinds: map[string]int{}}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Spread the clients over the gap.
			loadgen.Pause(ctx, kaGap*time.Duration(i)/time.Duration(n))
			var c net.Conn
			var br *bufio.Reader
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for ctx.Err() == nil {
				reused := c != nil
				if c == nil {
					var err error
					c, err = net.DialTimeout("tcp", addr, loadTimeout)
					if err != nil {
						c = nil
						mu.Lock()
						res.Sent++
						res.Other++
						res.Kinds[loadgen.Classify(err)]++
						mu.Unlock()
						loadgen.Pause(ctx, kaGap)
						continue
					}
					br = bufio.NewReader(c)
				}
				cut, closed, err := kaRequest(c, br)
				mu.Lock()
				res.Sent++
				switch {
				case err == nil:
					if closed {
						res.Closes++
					}
				case cut && reused:
					res.Cut++
				default:
					res.Other++
					res.Kinds[loadgen.Classify(err)]++
				}
				mu.Unlock()
				if err != nil || closed {
					c.Close()
					c = nil
				}
				loadgen.Pause(ctx, kaGap)
			}
		}(i)
	}
	wg.Wait()
	return res
}

// kaRequest sends one keep-alive request on c. cut: the connection ended
// before any byte of the answer; closed: the answer said Connection: close.
func kaRequest(c net.Conn, br *bufio.Reader) (cut, closed bool, err error) {
	_ = c.SetDeadline(time.Now().Add(loadTimeout))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
		return closedErr(err), false, err
	}
	if _, err := br.Peek(1); err != nil {
		return closedErr(err), false, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return false, false, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return false, false, err
	}
	if resp.StatusCode != 200 {
		return false, resp.Close, errors.New("status " + resp.Status)
	}
	return false, resp.Close, nil
}

func closedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
