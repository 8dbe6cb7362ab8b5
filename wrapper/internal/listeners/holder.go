package listeners

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/logx"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// Holder keeps the listening sockets and answers "_getsocks" with copies of
// them on a unix socket of its own (mode 0600, in the wrapper's private
// folder), only to a peer that runs as the wrapper's user and is the
// wrapper's own child: a haproxy generation it started with "-x".
type Holder struct {
	path string
	ln   *net.UnixListener
	// Allow decides whether a peer may have the sockets (its pid, uid);
	// nil is the rule above. Set before Serve.
	Allow func(pid, uid int) error

	mu     sync.Mutex
	socks  []Socket
	served int // exchanges answered
	wg     sync.WaitGroup
	closed bool
}

// Listen creates the holder's socket at path (a stale file left there by an
// earlier wrapper of the same private folder is replaced).
func Listen(path string) (*Holder, error) {
	_ = os.Remove(path)
	ln, err := proc.ListenPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("listening sockets' hand-over socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	return &Holder{path: path, ln: ln}, nil
}

// FromListener rebuilds a holder from its socket handed over an upgrade.
func FromListener(f *os.File, path string) (*Holder, error) {
	ul, err := proc.UnixListenerFromFile(f)
	if err != nil {
		return nil, err
	}
	ul.SetUnlinkOnClose(true)
	return &Holder{path: path, ln: ul}, nil
}

// Path is where "-x" finds the holder.
func (h *Holder) Path() string { return h.path }

// Listener is the holder's own socket, for an upgrade's hand-over.
func (h *Holder) Listener() *net.UnixListener { return h.ln }

// Serve answers "_getsocks" until Close. Run it in a goroutine.
func (h *Holder) Serve() {
	for {
		c, err := h.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			logx.Warningf("listening sockets' hand-over socket %s: %v", h.path, err)
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: do not spin
			continue
		}
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			c.Close()
			return
		}
		h.wg.Add(1)
		h.mu.Unlock()
		go func() {
			defer h.wg.Done()
			defer c.Close()
			if err := h.answer(c); err != nil {
				logx.Warningf("listening sockets' hand-over: %v", err)
			}
		}()
	}
}

func (h *Holder) answer(c *net.UnixConn) error {
	_ = c.SetDeadline(time.Now().Add(exchangeTimeout))
	pid, uid, err := peer(c)
	if err != nil {
		return err
	}
	allow := h.Allow
	if allow == nil {
		allow = childOfMine
	}
	if err := allow(pid, uid); err != nil {
		return fmt.Errorf("refused pid %d (uid %d): %w", pid, uid, err)
	}
	req, err := readRequest(c)
	if err != nil {
		return fmt.Errorf("pid %d: %w", pid, err)
	}
	if req != Request {
		return fmt.Errorf("pid %d asked %.40q, only %q is answered", pid, req, Request)
	}
	socks, err := h.copies()
	if err != nil {
		return err
	}
	defer CloseAll(socks)
	if err := send(c, socks); err != nil {
		return fmt.Errorf("pid %d: %w", pid, err)
	}
	h.mu.Lock()
	h.served++
	h.mu.Unlock()
	logx.Debugf("listening sockets' hand-over: %d socket(s) to pid %d", len(socks), pid)
	return nil
}

// childOfMine lets only the wrapper's own children, of its own user, in.
func childOfMine(pid, uid int) error {
	if uid != os.Getuid() {
		return fmt.Errorf("not uid %d", os.Getuid())
	}
	if proc.ParentOf(pid) != os.Getpid() {
		return errors.New("not a haproxy started by this wrapper")
	}
	return nil
}

func peer(c *net.UnixConn) (pid, uid int, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if cerr != nil {
		return 0, 0, fmt.Errorf("peer credentials: %w", cerr)
	}
	return int(cred.Pid), int(cred.Uid), nil
}

// copies duplicates the held sockets (the caller closes them), so that a
// Replace during an exchange never closes a descriptor being sent.
func (h *Holder) copies() ([]Socket, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Socket, 0, len(h.socks))
	for _, s := range h.socks {
		d, err := s.dup()
		if err != nil {
			CloseAll(out)
			return nil, fmt.Errorf("duplicate %s: %w", s.Describe(), err)
		}
		out = append(out, d)
	}
	return out, nil
}

// Len is how many sockets are held.
func (h *Holder) Len() int {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.socks)
}

// Served is how many exchanges were answered.
func (h *Holder) Served() int {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.served
}

// Held returns the held sockets, in order. Their descriptors stay the
// holder's: use them only from the goroutine that calls Replace and
// Release (the supervisor's loop), which alone may close them.
func (h *Holder) Held() []Socket {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Socket(nil), h.socks...)
}

// Add holds more sockets (the holder owns them from now on); a socket
// already held (the same inode) is closed instead.
func (h *Holder) Add(socks []Socket) (added []Socket) {
	h.mu.Lock()
	defer h.mu.Unlock()
	have := map[uint64]bool{}
	for _, s := range h.socks {
		have[s.Ino()] = true
	}
	for _, s := range socks {
		ino := s.Ino()
		if ino == 0 || have[ino] {
			s.Close()
			continue
		}
		have[ino] = true
		h.socks = append(h.socks, s)
		added = append(added, s)
	}
	return added
}

// Removed is a socket Replace closed: its description and inode, taken
// before the close.
type Removed struct {
	Desc string
	Ino  uint64
}

// Replace makes socks the held set: what a generation that serves listens
// on. A socket held already (the same inode) keeps its descriptor, with the
// namespace, interface and options socks give; a new one is held; a held one
// that socks lack is closed and returned in removed. The holder owns socks
// from now on.
func (h *Holder) Replace(socks []Socket) (added, kept []Socket, removed []Removed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	byIno := map[uint64]int{}
	for i, s := range h.socks {
		byIno[s.Ino()] = i
	}
	next := make([]Socket, 0, len(socks))
	used := map[int]bool{}
	seen := map[uint64]bool{}
	for _, s := range socks {
		ino := s.Ino()
		if ino == 0 || seen[ino] {
			s.Close()
			continue
		}
		seen[ino] = true
		if i, ok := byIno[ino]; ok {
			old := h.socks[i]
			used[i] = true
			s.Close()
			old.NS, old.Iface, old.Opts = s.NS, s.Iface, s.Opts
			next = append(next, old)
			kept = append(kept, old)
			continue
		}
		next = append(next, s)
		added = append(added, s)
	}
	for i, s := range h.socks {
		if !used[i] {
			removed = append(removed, Removed{Desc: s.Describe(), Ino: s.Ino()})
			s.Close()
		}
	}
	h.socks = next
	return added, kept, removed
}

// Release closes every held socket (the ports close once haproxy's copies
// are closed too) and keeps serving an empty set.
func (h *Holder) Release() int {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.socks)
	CloseAll(h.socks)
	h.socks = nil
	return n
}

// Close stops serving, waits for the exchanges in progress and closes every
// held socket.
func (h *Holder) Close() {
	if h == nil {
		return
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	h.mu.Unlock()
	h.ln.Close()
	h.wg.Wait()
	h.Release()
}

// RawConn wraps a held descriptor for an upgrade's hand-over (which takes
// a syscall.Conn and duplicates it), without an *os.File.
type RawConn int

func (r RawConn) SyscallConn() (syscall.RawConn, error) { return rawConn(r), nil }

type rawConn int

func (r rawConn) Control(f func(fd uintptr)) error { f(uintptr(r)); return nil }
func (r rawConn) Read(func(fd uintptr) bool) error {
	return errors.New("listeners: raw descriptor: no read")
}
func (r rawConn) Write(func(fd uintptr) bool) error {
	return errors.New("listeners: raw descriptor: no write")
}

// FromFile turns a socket handed over an upgrade into a held Socket: its
// descriptor is duplicated (close-on-exec) without os.File's Fd, which
// would switch the socket to blocking mode, and f is closed.
func FromFile(f *os.File) (Socket, error) {
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return Socket{FD: -1}, err
	}
	nfd, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3) }); err != nil {
		return Socket{FD: -1}, err
	}
	if derr != nil {
		return Socket{FD: -1}, derr
	}
	return Socket{FD: nfd}, nil
}
