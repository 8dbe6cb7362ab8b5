package haproxy

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// WriteReadyConfig writes, into the wrapper's private runtime folder, the
// extra configuration file of generation gen: a stats socket of its own. The
// generation serves once haproxy answers "show info" there with its own pid:
// haproxy answers only from its event loop, after binding every listener.
// The socket exposes the listeners ("expose-fd listeners"): the wrapper takes
// its copies of them there (package listeners); only root reaches it (mode
// 0600 in a 0700 folder).
// The files are created afresh (O_EXCL|O_NOFOLLOW): nothing planted in the
// folder is followed or loaded.
func WriteReadyConfig(dir string, gen int) (sock, cfg string, err error) {
	sock = filepath.Join(dir, fmt.Sprintf("gen-%d.sock", gen))
	cfg = filepath.Join(dir, fmt.Sprintf("gen-%d.cfg", gen))
	_ = os.Remove(sock)
	_ = os.Remove(cfg)
	text := fmt.Sprintf("# written by haproxy-systemd-wrapper: readiness socket of generation %d\nglobal\n    stats socket %s mode 600 level user expose-fd listeners\n", gen, sock)
	f, err := os.OpenFile(cfg, os.O_WRONLY|os.O_CREATE|os.O_EXCL|proc.ONoFollow, 0o600)
	if err != nil {
		return "", "", fmt.Errorf("write %s: %w: set HAPROXY_WRAPPER_RUNTIME_DIR to a private folder", cfg, err)
	}
	_, werr := f.WriteString(text)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(cfg)
		return "", "", fmt.Errorf("write %s: %w", cfg, werr)
	}
	return sock, cfg, nil
}

// WaitAnswers waits until haproxy pid answers "show info" on sock with its
// own pid. No fixed-interval polling: it waits (inotify) for the socket file
// to appear, then asks once; haproxy answers as soon as its event loop runs.
// Where inotify is unavailable it falls back to a back-off from 1 ms to
// 10 ms.
func WaitAnswers(ctx context.Context, sock string, pid int) error {
	w, werr := newDirWatch(filepath.Dir(sock))
	if w != nil {
		defer w.close()
	}
	wait := time.Millisecond
	for {
		if _, err := os.Stat(sock); err == nil {
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			info, err := ShowInfo(qctx, sock)
			cancel()
			if err == nil && info.Pid == pid {
				return nil
			}
			if err == nil && info.Pid > 0 && proc.ParentOf(info.Pid) == pid {
				return fmt.Errorf("haproxy pid %d runs in master-worker mode (its worker %d answers): remove 'master-worker' from the global section, the wrapper supervises haproxy itself", pid, info.Pid)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Bound but not listening yet, or not answering yet: short
			// back-off (the file exists, no inotify event will come).
			if err := sleepCtx(ctx, 200*time.Microsecond); err != nil {
				return err
			}
			continue
		}
		if werr == nil {
			if err := w.wait(ctx, filepath.Base(sock)); err != nil {
				return err
			}
			continue
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return err
		}
		wait = min(wait*2, 10*time.Millisecond)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// dirWatch is an inotify watch on one folder for files being created.
type dirWatch struct {
	f *os.File
}

func newDirWatch(dir string) (*dirWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &dirWatch{f: os.NewFile(uintptr(fd), "inotify")}, nil
}

func (w *dirWatch) close() { w.f.Close() }

// wait returns once an event named name (or any overflow) is read, or when
// ctx ends. Spurious returns are fine: the caller looks again.
func (w *dirWatch) wait(ctx context.Context, name string) error {
	stop := context.AfterFunc(ctx, func() { _ = w.f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 4096)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafePointer(&buf[off]))
			nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			got := strings.TrimRight(string(nameBytes), "\x00")
			if got == name || ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				return nil
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

// WaitPipeClosed waits for haproxy <= 1.7 to close its end of the
// HAPROXY_WRAPPER_FD pipe, which it does once it serves. r is closed on
// return.
func WaitPipeClosed(ctx context.Context, r *os.File) error {
	defer r.Close()
	stop := context.AfterFunc(ctx, func() { _ = r.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	b := make([]byte, 64)
	for {
		if _, err := r.Read(b); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return nil
		}
	}
}

// WaitPIDFileReady waits until haproxy (<= 1.7 without the readiness pipe,
// generation pid) has written its pid file with the pids of its own
// processes (pid itself or its children, alive): what "started" means for
// haproxy 1.5.0-1.5.18 and 1.6. It returns an error when pid exits first.
// The file is read with a short back-off (no event tells when haproxy
// writes it; these releases are old and rare).
func WaitPIDFileReady(ctx context.Context, pidFile string, pid int) ([]int, error) {
	wait := time.Millisecond
	for {
		if !proc.Alive(pid) {
			return nil, fmt.Errorf("haproxy pid %d exited before it wrote its pid file %s", pid, pidFile)
		}
		if pids, _, err := proc.ReadPIDFile(pidFile); err == nil && len(pids) > 0 {
			ok := true
			for _, p := range pids {
				ok = ok && (p == pid || proc.ParentOf(p) == pid) && proc.Alive(p)
			}
			if ok {
				return pids, nil
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		wait = min(wait*2, 50*time.Millisecond)
	}
}

// Listeners counts the listening sockets process pid holds (TCP in LISTEN
// state, bound UDP, listening unix stream sockets), leaving out the unix
// sockets at the paths in except (the wrapper's private readiness socket):
// what haproxy itself counts to refuse a configuration with no listener. A
// process without any socket (gone, or a zombie) is an error.
//
// The TCP listeners come from sock_diag (proc.TCPInodes), which walks only
// the kernel's listening hash: /proc/PID/net/tcp walks every bucket of the
// established one too, about 5 ms a table even on an idle host (2 vCPU,
// 2026-12-03), and this count runs once a reload in the loop and at each
// poll of the wait for the old generations to stop listening. /proc is
// read when sock_diag is refused (a seccomp filter, no netlink) or pid is
// in another network namespace than the wrapper.
func Listeners(pid int, except ...string) (int, error) {
	inodes, err := proc.SocketInodes(pid)
	if err != nil {
		return 0, err
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("pid %d holds no socket", pid)
	}
	mine := func(field string) bool {
		ino, err := strconv.ParseUint(field, 10, 64)
		return err == nil && inodes[ino]
	}
	n := 0
	tables := []procTable{
		{"udp", func(f []string) bool { return f[3] == "07" }, false},
		{"udp6", func(f []string) bool { return f[3] == "07" }, false},
	}
	fromProc := true
	if proc.SameNetNS(pid) {
		if tcp, err := tcpListeners(); err == nil {
			fromProc = false
			for ino := range tcp {
				if inodes[ino] {
					n++
				}
			}
		}
	}
	if fromProc {
		tables = append(tables,
			procTable{"tcp", func(f []string) bool { return f[3] == "0A" }, true},
			procTable{"tcp6", func(f []string) bool { return f[3] == "0A" }, true})
	}
	for _, t := range tables {
		n += countTable(fmt.Sprintf("/proc/%d/net/%s", pid, t.file), 1, func(f []string) (bool, bool) {
			if len(f) <= 9 {
				return false, false
			}
			listening := t.listen(f)
			return listening && mine(f[9]), t.sorted && !listening
		})
	}
	skip := map[string]bool{}
	for _, p := range except {
		skip[p] = true
	}
	// /proc/net/unix: Num RefCount Protocol Flags Type St Inode Path
	n += countTable(fmt.Sprintf("/proc/%d/net/unix", pid), 1, func(f []string) (bool, bool) {
		if len(f) < 7 || !mine(f[6]) {
			return false, false
		}
		if len(f) >= 8 && skip[BoundPath(f[7])] {
			return false, false
		}
		return f[3] == "00010000", false // __SO_ACCEPTCON: listening
	})
	return n, nil
}

// tcpListeners is the TCP sockets in LISTEN state of the network namespace,
// by sock_diag (a test replaces it to see the /proc way).
var tcpListeners = func() (map[uint64]bool, error) { return proc.TCPInodes(1 << proc.TCPListen) }

// procTable is a /proc/PID/net table of inet sockets, and which of its
// lines are listeners.
type procTable struct {
	file   string
	listen func(fields []string) bool
	// sorted: the kernel lists the listening sockets first (its listening
	// hash, then the established one, TIME_WAIT included): the read stops
	// at the first other line.
	sorted bool
}

// BoundPath is the path a unix socket was asked for: haproxy binds
// "PATH.PID.tmp" and renames it to PATH, and /proc keeps the bound name.
func BoundPath(p string) string {
	if !strings.HasSuffix(p, ".tmp") {
		return p
	}
	base := strings.TrimSuffix(p, ".tmp")
	if i := strings.LastIndexByte(base, '.'); i > 0 && i < len(base)-1 && strings.Trim(base[i+1:], "0123456789") == "" {
		return base[:i]
	}
	return p
}

// countTable counts the lines of a /proc table that match, after skipLines;
// match also says when to stop reading.
func countTable(path string, skipLines int, match func([]string) (ok, stop bool)) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for i := 0; sc.Scan(); i++ {
		if i < skipLines {
			continue
		}
		ok, stop := match(strings.Fields(sc.Text()))
		if ok {
			n++
		}
		if stop {
			break
		}
	}
	return n
}
