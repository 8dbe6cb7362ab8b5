// Package control is the wrapper's control channel: a unix stream socket
// (mode 0600) on which a client writes one command line ("reload", "status",
// "status json") and reads the answer. For reload the answer comes once the
// reload is settled: a line "ok <what>" or "error <why>".
//
// The server never touches the supervisor: requests reach it as typed values
// on a channel (Requests), and a status request carries a channel on which
// the supervisor puts a copy of its state.
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/status"
)

// Kind is what a request asks.
type Kind int

const (
	Reload Kind = iota
	Status
)

// Request is one client's request. For Status, the supervisor sends a copy
// of its report on Snapshot (buffered); for Reload it calls Answer once.
type Request struct {
	Kind     Kind
	Snapshot chan<- status.Report
	conn     *net.UnixConn
	once     sync.Once
}

// Answer tells a waiting "reload" client the outcome and closes the
// connection. The write is bounded: a client that does not read cannot hold
// the caller.
func (r *Request) Answer(ok bool, msg string) {
	if r == nil || r.conn == nil {
		return
	}
	r.once.Do(func() {
		word := "ok"
		if !ok {
			word = "error"
		}
		_ = r.conn.SetWriteDeadline(time.Now().Add(time.Second))
		fmt.Fprintf(r.conn, "%s %s\n", word, strings.ReplaceAll(msg, "\n", " "))
		r.conn.Close()
	})
}

// Conn is the client's connection, for a hand-off.
func (r *Request) Conn() syscall.Conn { return r.conn }

// Server accepts control connections.
type Server struct {
	path string
	ln   *net.UnixListener
	reqs chan *Request

	mu       sync.Mutex
	inflight int  // connections accepted and not settled (answered or handed over)
	paused   bool // no more accepts: a hand-off is under way
	accept   chan struct{}
	wg       sync.WaitGroup
	closing  chan struct{}
}

// ErrInUse is a control socket a live process answers on.
var ErrInUse = errors.New("in use")

// Listen creates the control socket. A leftover socket nobody answers on is
// replaced; one a live process answers on is never taken over (ErrInUse,
// naming that process).
func Listen(path string) (*Server, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		who := "?"
		if cred, err := peerCred(c.(*net.UnixConn)); err == nil {
			who = fmt.Sprintf("pid %d, uid %d", cred.Pid, cred.Uid)
		}
		c.Close()
		return nil, fmt.Errorf("control socket %s is in use by another running process (%s): %w: set HAPROXY_WRAPPER_CONTROL_SOCKET (or the runtime folder) to another path", path, who, ErrInUse)
	}
	_ = os.Remove(path)
	ln, err := proc.ListenPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w (set HAPROXY_WRAPPER_CONTROL_SOCKET to a writable path)", path, err)
	}
	return serve(path, ln), nil
}

// FromFile serves on a listening socket handed over by an earlier image.
func FromFile(f *os.File) (*Server, error) {
	ul, err := proc.UnixListenerFromFile(f)
	if err != nil {
		return nil, err
	}
	return serve(ul.Addr().String(), ul), nil
}

func serve(path string, ln *net.UnixListener) *Server {
	ln.SetUnlinkOnClose(false)
	s := &Server{path: path, ln: ln, reqs: make(chan *Request, 64), closing: make(chan struct{})}
	s.startAccept()
	return s
}

// Requests delivers the requests to the supervisor.
func (s *Server) Requests() <-chan *Request { return s.reqs }

// Listener is the listening socket, for a hand-off.
func (s *Server) Listener() syscall.Conn { return s.ln }

func (s *Server) startAccept() {
	s.mu.Lock()
	s.paused = false
	s.accept = make(chan struct{})
	done := s.accept
	s.mu.Unlock()
	_ = s.ln.SetDeadline(time.Time{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(done)
		for {
			conn, err := s.ln.AcceptUnix()
			s.mu.Lock()
			paused := s.paused
			if err == nil {
				s.inflight++
			}
			s.mu.Unlock()
			if err != nil {
				if errors.Is(err, net.ErrClosed) || paused {
					return
				}
				time.Sleep(10 * time.Millisecond) // EMFILE and the like: do not spin
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.handle(conn)
				s.settled()
			}()
		}
	}()
}

func (s *Server) settled() {
	s.mu.Lock()
	s.inflight--
	s.mu.Unlock()
}

// peerCred is the other end's credentials (SO_PEERCRED).
func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return nil, err
	}
	return cred, cerr
}

// peerAllowed accepts root and the wrapper's own uid only.
func peerAllowed(c *net.UnixConn) error {
	cred, err := peerCred(c)
	if err != nil {
		return err
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("uid %d is neither root nor the wrapper's", cred.Uid)
	}
	return nil
}

// ErrStranger is a control socket that is not the wrapper's: someone else's
// file, or a server that is not root, this user, or $MAINPID.
var ErrStranger = errors.New("not the wrapper's")

// checkServer refuses a socket file or a server that is not the wrapper's:
// the file must be a socket owned by root or this user, the server's
// credentials (SO_PEERCRED) root or this user, and its pid mainPID when that
// is set (systemd sets $MAINPID for ExecReload=).
func checkServer(path string, c *net.UnixConn, mainPID int) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("control socket %s is not a socket: %w", path, ErrStranger)
	}
	if st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("control socket %s belongs to uid %d: %w: refusing to talk to it", path, st.Uid, ErrStranger)
	}
	if c == nil {
		return nil
	}
	cred, err := peerCred(c)
	if err != nil {
		return fmt.Errorf("control socket %s: credentials: %w", path, err)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("control socket %s is served by uid %d (pid %d): %w: refusing its answer", path, cred.Uid, cred.Pid, ErrStranger)
	}
	if mainPID > 0 && int(cred.Pid) != mainPID {
		return fmt.Errorf("control socket %s is served by pid %d, not by the unit's main process %d ($MAINPID): %w", path, cred.Pid, mainPID, ErrStranger)
	}
	return nil
}

func (s *Server) handle(conn *net.UnixConn) {
	if err := peerAllowed(conn); err != nil {
		logx.Warningf("control socket %s: connection refused: %v", s.path, err)
		fmt.Fprintf(conn, "error permission denied\n")
		conn.Close()
		return
	}
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
	switch {
	case cmd[0] == "reload" && len(cmd) == 1:
		select {
		case s.reqs <- &Request{Kind: Reload, conn: conn}:
		case <-s.closing:
			fmt.Fprintln(conn, "error the wrapper is exiting")
			conn.Close()
		}
	case cmd[0] == "status" && (len(cmd) == 1 || len(cmd) == 2 && cmd[1] == "json"):
		snap := make(chan status.Report, 1)
		var r status.Report
		select {
		case s.reqs <- &Request{Kind: Status, Snapshot: snap}:
		case <-s.closing:
			fmt.Fprintln(conn, "error the wrapper is exiting")
			conn.Close()
			return
		}
		select {
		case r = <-snap:
		case <-s.closing:
			fmt.Fprintln(conn, "error the wrapper is exiting")
			conn.Close()
			return
		case <-time.After(5 * time.Second):
			fmt.Fprintln(conn, "error the wrapper is busy or exiting")
			conn.Close()
			return
		}
		r.Fill()
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if len(cmd) == 2 {
			b, _ := json.MarshalIndent(r, "", "  ")
			fmt.Fprintf(conn, "%s\n", b)
		} else {
			_, _ = io.WriteString(conn, r.Text())
		}
		conn.Close()
	default:
		fmt.Fprintf(conn, "error unknown command %q\n", strings.TrimSpace(line))
		conn.Close()
	}
}

// Pause stops accepting (new connections wait in the socket's queue for the
// next image) and returns once every accepted connection is settled: status
// answered, reload requests delivered. handle is given every request that
// arrives meanwhile (the supervisor's loop is the caller and cannot read
// Requests itself). Bounded by d.
func (s *Server) Pause(d time.Duration, handle func(*Request)) {
	s.mu.Lock()
	s.paused = true
	done := s.accept
	s.mu.Unlock()
	_ = s.ln.SetDeadline(time.Unix(1, 0))
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		select {
		case r := <-s.reqs:
			handle(r)
			continue
		case <-deadline.C:
			logx.Warningf("control socket %s: requests still in progress after %s", s.path, d)
			return
		default:
		}
		s.mu.Lock()
		n := s.inflight
		s.mu.Unlock()
		select {
		case <-done:
		default:
			n++ // the accept loop has not seen the pause yet
		}
		if n == 0 && len(s.reqs) == 0 {
			return
		}
		select {
		case r := <-s.reqs:
			handle(r)
		case <-time.After(time.Millisecond):
		case <-deadline.C:
			logx.Warningf("control socket %s: requests still in progress after %s", s.path, d)
			return
		}
	}
}

// Resume undoes Pause after a hand-off that did not happen.
func (s *Server) Resume() { s.startAccept() }

// Close stops the server, removes the socket file and joins its goroutines
// (bounded: a client that does not read is cut by the write deadline).
func (s *Server) Close() {
	close(s.closing)
	s.ln.Close()
	_ = os.Remove(s.path)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(6 * time.Second):
	}
}

// RequestFromFile rebuilds a waiting reload request handed over by an
// earlier image.
func RequestFromFile(f *os.File) (*Request, error) {
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, errors.New("not a unix connection")
	}
	return &Request{Kind: Reload, conn: uc}, nil
}

// dial connects to the control socket after checking that the socket and
// its server are the wrapper's (checkServer; $MAINPID is read from the
// environment), and returns the server's pid.
func dial(ctx context.Context, path string) (*net.UnixConn, int, error) {
	mainPID, _ := strconv.Atoi(os.Getenv("MAINPID"))
	if err := checkServer(path, nil, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, 0, err
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	c, err := d.DialContext(dctx, "unix", path)
	cancel()
	if err != nil {
		return nil, 0, fmt.Errorf("control socket %s: %w: is the wrapper running (check --unit, HAPROXY_WRAPPER_CONTROL_SOCKET and CONFIG)? 'kill -USR2 <wrapper pid>' also reloads", path, err)
	}
	uc := c.(*net.UnixConn)
	if err := checkServer(path, uc, mainPID); err != nil {
		c.Close()
		return nil, 0, err
	}
	cred, err := peerCred(uc)
	if err != nil {
		c.Close()
		return nil, 0, fmt.Errorf("control socket %s: credentials: %w", path, err)
	}
	return uc, int(cred.Pid), nil
}

// Peer checks that a wrapper answers on the control socket (the socket and
// its server are the wrapper's, as for Ask) and returns its pid. It sends
// no command.
func Peer(path string) (int, error) {
	c, pid, err := dial(context.Background(), path)
	if err != nil {
		return 0, err
	}
	c.Close()
	return pid, nil
}

// Ask sends one command and returns the answer, after checking that the
// socket and its server are the wrapper's (checkServer; $MAINPID is read
// from the environment).
func Ask(ctx context.Context, path, cmd string) (string, error) {
	c, _, err := dial(ctx, path)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
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

// RequestText is Ask with a timeout (0: none).
func RequestText(path, cmd string, timeout time.Duration) (string, error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return Ask(ctx, path, cmd)
}
