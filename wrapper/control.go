package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The control channel: a unix stream socket (mode 0600) on which a client
// writes one command line ("reload", "status", "status json") and reads the
// answer. For reload the answer comes once the reload is settled: a line
// "ok <what>" or "error <why>".
type controlServer struct {
	path string
	ln   *net.UnixListener

	mu       sync.Mutex
	inflight int           // connections accepted whose request is not handed over yet
	paused   bool          // no more accepts: a re-exec is under way
	stopped  chan struct{} // closed when the accept loop has returned
}

// listenControl creates the control socket. A leftover socket nobody answers
// on is replaced; one a live wrapper answers on is an error.
func listenControl(s *supervisor, path string) (*controlServer, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s is in use by another running wrapper: set HAPROXY_WRAPPER_CONTROL_SOCKET to another path", path)
	}
	_ = os.Remove(path)
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w (set HAPROXY_WRAPPER_CONTROL_SOCKET to a writable path)", path, err)
	}
	ln.SetUnlinkOnClose(false)
	cs := &controlServer{path: path, ln: ln, stopped: make(chan struct{})}
	go cs.serve(s)
	return cs, nil
}

func controlFromFD(s *supervisor, fd int) *controlServer {
	f := os.NewFile(uintptr(fd), "control")
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		log.Warningf("control socket inherited across re-exec: %v: 'reload' and 'status' unavailable until restart", err)
		return nil
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	cs := &controlServer{path: ul.Addr().String(), ln: ul, stopped: make(chan struct{})}
	go cs.serve(s)
	return cs
}

// pause stops accepting (the pending connections stay queued in the socket
// for the next image) and waits, running the supervisor's queued events, until
// every accepted request has been handed to the supervisor or answered.
func (c *controlServer) pause(s *supervisor) {
	c.mu.Lock()
	c.paused = true
	c.mu.Unlock()
	_ = c.ln.SetDeadline(time.Unix(1, 0))
	deadline := time.Now().Add(10 * time.Second)
	c.mu.Lock()
	stopped := c.stopped
	c.mu.Unlock()
	select { // the accept loop has seen the pause: no connection in between
	case <-stopped:
	case <-time.After(5 * time.Second):
	}
	for time.Now().Before(deadline) {
		c.mu.Lock()
		n := c.inflight
		c.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case f := <-s.events:
			f()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// resume undoes pause after a failed re-exec.
func (c *controlServer) resume(s *supervisor) {
	c.mu.Lock()
	c.paused = false
	c.stopped = make(chan struct{})
	c.mu.Unlock()
	_ = c.ln.SetDeadline(time.Time{})
	go c.serve(s)
}

func (c *controlServer) close() {
	c.ln.Close()
	_ = os.Remove(c.path)
}

func (c *controlServer) serve(s *supervisor) {
	c.mu.Lock()
	stopped := c.stopped
	c.mu.Unlock()
	defer close(stopped)
	for {
		conn, err := c.ln.Accept()
		c.mu.Lock()
		paused := c.paused
		if err == nil {
			c.inflight++
		}
		c.mu.Unlock()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || paused {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go func() {
			c.handle(s, conn)
			c.mu.Lock()
			c.inflight--
			c.mu.Unlock()
		}()
	}
}

func (c *controlServer) handle(s *supervisor, conn net.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(conn, 256)).ReadString('\n')
	if err != nil {
		conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	cmd := strings.Fields(line)
	if len(cmd) == 0 {
		conn.Close()
		return
	}
	switch cmd[0] {
	case "reload":
		s.post(func() { s.requestReload("reload command", conn) })
	case "status":
		asJSON := len(cmd) > 1 && cmd[1] == "json"
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, ok := s.snapshot(ctx)
		cancel()
		if !ok {
			fmt.Fprintln(conn, "error the wrapper is busy or exiting")
			conn.Close()
			return
		}
		r.fill()
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if asJSON {
			b, _ := json.MarshalIndent(r, "", "  ")
			fmt.Fprintf(conn, "%s\n", b)
		} else {
			io.WriteString(conn, r.text())
		}
		conn.Close()
	default:
		fmt.Fprintf(conn, "error unknown command %q\n", cmd[0])
		conn.Close()
	}
}

// replyWaiter answers a waiting "reload" client and closes its connection.
func replyWaiter(c net.Conn, ok bool, msg string) {
	if c == nil {
		return
	}
	word := "ok"
	if !ok {
		word = "error"
	}
	_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "%s %s\n", word, strings.ReplaceAll(msg, "\n", " "))
	c.Close()
}

// controlRequest sends one command and returns the answer. timeout 0: wait.
func controlRequest(path, cmd string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("control socket %s: %w: is the wrapper running (check HAPROXY_WRAPPER_CONTROL_SOCKET)? 'kill -USR2 <wrapper pid>' also reloads", path, err)
	}
	defer c.Close()
	if timeout > 0 {
		_ = c.SetDeadline(time.Now().Add(timeout))
	}
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", fmt.Errorf("control socket %s: %w", path, err)
	}
	b, err := io.ReadAll(io.LimitReader(c, 1<<20))
	if err != nil {
		return string(b), fmt.Errorf("control socket %s: %w", path, err)
	}
	if len(b) == 0 {
		return "", fmt.Errorf("control socket %s: the wrapper closed the connection without an answer (did it exit? see its log)", path)
	}
	return string(b), nil
}
