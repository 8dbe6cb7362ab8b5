package listeners

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// tcpListeners opens n listening sockets on 127.0.0.1 (ephemeral ports);
// the test owns them.
func tcpListeners(t *testing.T, n int) []Socket {
	t.Helper()
	var out []Socket
	for i := 0; i < n; i++ {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		if err := unix.Listen(fd, 16); err != nil {
			t.Fatal(err)
		}
		out = append(out, Socket{FD: fd, Opts: uint32(i), Iface: fmt.Sprintf("if%d", i%3), NS: strings.Repeat("n", i%2)})
	}
	t.Cleanup(func() { CloseAll(out) })
	return out
}

func newHolder(t *testing.T) *Holder {
	t.Helper()
	h, err := Listen(filepath.Join(testutil.ShortDir(t), "listeners.sock"))
	if err != nil {
		t.Fatal(err)
	}
	h.Allow = func(pid, uid int) error {
		if uid != os.Getuid() {
			return fmt.Errorf("uid %d", uid)
		}
		return nil
	}
	go h.Serve()
	t.Cleanup(h.Close)
	return h
}

// TestExchangeRoundTrip: what the holder serves, Fetch receives: the same
// sockets (inodes), names and options, across several batches (253 a
// message, an acknowledgement after each full one) and for an empty set.
func TestExchangeRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 3, maxSendFD, maxSendFD + 1, 2*maxSendFD + 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			h := newHolder(t)
			mine := tcpListeners(t, n)
			dups := make([]Socket, n)
			for i, s := range mine {
				d, err := s.dup()
				if err != nil {
					t.Fatal(err)
				}
				dups[i] = d
			}
			h.Add(dups)
			if h.Len() != n {
				t.Fatalf("holder holds %d, want %d", h.Len(), n)
			}
			got, err := Fetch(context.Background(), h.Path())
			if n == 0 {
				if !errors.Is(err, ErrNoSockets) {
					t.Fatalf("Fetch of an empty set: %d sockets, %v; want ErrNoSockets", len(got), err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			defer CloseAll(got)
			if len(got) != n {
				t.Fatalf("got %d sockets, want %d", len(got), n)
			}
			for i := range got {
				if got[i].Ino() != mine[i].Ino() || got[i].NS != mine[i].NS || got[i].Iface != mine[i].Iface || got[i].Opts != mine[i].Opts {
					t.Fatalf("socket %d: got ino %d %q %q %#x, want ino %d %q %q %#x", i, got[i].Ino(), got[i].NS, got[i].Iface, got[i].Opts,
						mine[i].Ino(), mine[i].NS, mine[i].Iface, mine[i].Opts)
				}
				if fl, _ := unix.FcntlInt(uintptr(got[i].FD), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
					t.Fatalf("socket %d received without close-on-exec", i)
				}
			}
		})
	}
}

// fakeSender serves one "_getsocks" on a socket pair the way haproxy's
// _getsocks does: optionally nothing at all (no socket), else the count, the
// batches, an acknowledgement awaited after each full batch.
func fakeSender(t *testing.T, socks []Socket, nothing bool) string {
	t.Helper()
	path := filepath.Join(testutil.ShortDir(t), "haproxy.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		c, err := ln.AcceptUnix()
		ln.Close()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		req, err := readRequest(c)
		if err != nil || req != Request {
			done <- fmt.Errorf("request %q: %v", req, err)
			return
		}
		if nothing {
			done <- nil
			return
		}
		done <- send(c, socks)
	}()
	t.Cleanup(func() {
		if err := testutil.Recv(t, done, 10*time.Second, "end of the fake sender"); err != nil {
			t.Errorf("fake sender: %v", err)
		}
	})
	return path
}

// TestFetchVariants: haproxy 1.8-2.2 sends listener options, 2.3+ zeroes,
// and every release sends nothing when it has no socket.
func TestFetchVariants(t *testing.T) {
	socks := tcpListeners(t, 2)
	socks[0].Opts, socks[1].Opts = OptV6Only|OptForeign, 0
	for _, tt := range []struct {
		name    string
		opts    []uint32
		nothing bool
		want    int
	}{
		{"1.8-2.2 listener options", []uint32{OptV6Only | OptForeign, OptV4V6}, false, 2},
		{"2.3+ zeroes", []uint32{0, 0}, false, 2},
		{"no socket: nothing sent", nil, true, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]Socket(nil), socks...)
			for i := range in {
				if i < len(tt.opts) {
					in[i].Opts = tt.opts[i]
				}
			}
			got, err := Fetch(context.Background(), fakeSender(t, in, tt.nothing))
			if tt.nothing {
				// Nothing sent: no socket, or a failed exchange on
				// haproxy's side; never an empty set to hold.
				if !errors.Is(err, ErrNoSockets) {
					t.Fatalf("nothing sent: %d sockets, %v; want ErrNoSockets", len(got), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer CloseAll(got)
			if len(got) != tt.want {
				t.Fatalf("got %d sockets, want %d", len(got), tt.want)
			}
			for i := range got {
				if got[i].Opts != tt.opts[i] {
					t.Errorf("socket %d options: got %#x, want %#x", i, got[i].Opts, tt.opts[i])
				}
			}
		})
	}
}

// TestFetchRefusesBrokenPayloads: a count that is not followed by as many
// descriptors, or a payload that does not describe them, is an error and
// leaks no descriptor.
func TestFetchRefusesBrokenPayloads(t *testing.T) {
	for _, tt := range []struct {
		name  string
		write func(c *net.UnixConn, fd int)
	}{
		{"count without descriptors", func(c *net.UnixConn, fd int) {
			_, _ = c.Write(binary.NativeEndian.AppendUint32(nil, 2))
		}},
		{"negative count", func(c *net.UnixConn, fd int) {
			_, _ = c.Write(binary.NativeEndian.AppendUint32(nil, 0xffffffff))
		}},
		{"short payload", func(c *net.UnixConn, fd int) {
			_, _ = c.Write(binary.NativeEndian.AppendUint32(nil, 1))
			_, _, _ = c.WriteMsgUnix([]byte{0, 0}, unix.UnixRights(fd), nil)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := tcpListeners(t, 1)[0]
			path := filepath.Join(testutil.ShortDir(t), "bad.sock")
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				c, err := ln.AcceptUnix()
				ln.Close()
				if err != nil {
					return
				}
				defer c.Close()
				_, _ = readRequest(c)
				tt.write(c, s.FD)
			}()
			before := openFDs(t)
			got, err := Fetch(context.Background(), path)
			if err == nil {
				CloseAll(got)
				t.Fatalf("Fetch accepted it: %d sockets", len(got))
			}
			if after := openFDs(t); after > before {
				t.Errorf("%d descriptors open after the failed exchange, %d before: %v", after, before, err)
			}
		})
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestHolderRefusesStrangers: the default rule answers only the wrapper's
// own children; this test process's connection is not one.
func TestHolderRefusesStrangers(t *testing.T) {
	h, err := Listen(filepath.Join(testutil.ShortDir(t), "listeners.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go h.Serve()
	defer h.Close()
	h.Add([]Socket{mustDup(t, tcpListeners(t, 1)[0])})
	fi, err := os.Stat(h.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("holder socket mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := Fetch(context.Background(), h.Path())
	if err == nil && len(got) > 0 {
		CloseAll(got)
		t.Fatal("a process that is not the wrapper's child got the sockets")
	}
}

func mustDup(t *testing.T, s Socket) Socket {
	t.Helper()
	d, err := s.dup()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestReplace: kept sockets keep their descriptor with the new metadata,
// new ones are held, missing ones are closed and reported.
func TestReplace(t *testing.T) {
	h := newHolder(t)
	a := tcpListeners(t, 3)
	h.Add([]Socket{mustDup(t, a[0]), mustDup(t, a[1])})
	keepFD := h.Held()[0].FD
	b0 := mustDup(t, a[0])
	b0.Opts = 7
	added, kept, removed := h.Replace([]Socket{b0, mustDup(t, a[2]), mustDup(t, a[2])})
	if len(added) != 1 || added[0].Ino() != a[2].Ino() {
		t.Errorf("added %v, want the third socket", added)
	}
	if len(kept) != 1 || kept[0].FD != keepFD || kept[0].Opts != 7 {
		t.Errorf("kept %+v, want fd %d with options 7", kept, keepFD)
	}
	if len(removed) != 1 || removed[0].Ino != a[1].Ino() || !strings.HasPrefix(removed[0].Desc, "tcp 127.0.0.1:") {
		t.Errorf("removed %+v, want the second socket", removed)
	}
	if h.Len() != 2 {
		t.Errorf("holds %d, want 2 (a duplicate inode counts once)", h.Len())
	}
	if n := h.Release(); n != 2 || h.Len() != 0 {
		t.Errorf("Release: %d released, %d left", n, h.Len())
	}
}

func TestStoreNames(t *testing.T) {
	s := tcpListeners(t, 1)[0]
	s.NS, s.Iface, s.Opts = "blue", "eth0:1", OptV6Only
	name := StoreName(s)
	if strings.ContainsAny(name, ": ") || len(name) > 255 {
		t.Fatalf("StoreName %q is not a valid FDNAME", name)
	}
	opts, ns, iface, ok := parseStoreName(name)
	if !ok || opts != OptV6Only || ns != "blue" || iface != "eth0:1" {
		t.Fatalf("parseStoreName(%q) = %#x %q %q %v", name, opts, ns, iface, ok)
	}
	s.NS = strings.Repeat("x", 200)
	if long := StoreName(s); len(long) > 255 {
		t.Fatalf("StoreName with a long namespace is %d bytes", len(long))
	}
	for _, other := range []string{"haproxy.socket", "stored", "unknown", "hsw.x.0..", "hsw.1.zz..", "hsw.1.0.zz."} {
		if _, _, _, ok := parseStoreName(other); ok {
			t.Errorf("parseStoreName(%q) accepted", other)
		}
	}
}

func TestParseListenEnv(t *testing.T) {
	for _, tt := range []struct {
		pid, fds, names string
		n               int
		wantNames       string
		err             bool
	}{
		{"", "", "", 0, "", false},
		{"42", "2", "a:b", 2, "a b", false},
		{"42", "2", "", 2, "unknown unknown", false},
		{"42", "3", "a", 3, "a unknown unknown", false},
		{"43", "2", "a:b", 0, "", false}, // another process's
		{"x", "2", "", 0, "", true},
		{"42", "-1", "", 0, "", true},
		{"42", "z", "", 0, "", true},
	} {
		n, names, err := ParseListenEnv(tt.pid, tt.fds, tt.names, 42)
		if (err != nil) != tt.err || n != tt.n || strings.Join(names, " ") != tt.wantNames {
			t.Errorf("ParseListenEnv(%q, %q, %q) = %d %q %v", tt.pid, tt.fds, tt.names, n, names, err)
		}
	}
}

// TestFetchFromRealHAProxy: the real haproxy's _getsocks on a stats socket
// with "expose-fd listeners" gives the wrapper the very sockets haproxy
// listens on (IPv4, IPv6 v6only, a unix path, an abstract one), and the
// holder hands them to a second haproxy started with -x, which then listens
// on the same sockets (inodes) instead of binding new ones.
func TestFetchFromRealHAProxy(t *testing.T) {
	bin := "/usr/sbin/haproxy"
	if b := os.Getenv("HSW_HAPROXY"); b != "" {
		bin = b // a by-hand run against another build
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no haproxy at %s: %v (make test installs it)", bin, err)
	}
	dir := testutil.ShortDir(t)
	p1, p2 := testutil.Port(t), testutil.Port(t)
	cfg := filepath.Join(dir, "h.cfg")
	text := fmt.Sprintf(`global
    stats socket %[1]s/admin.sock mode 600 level user expose-fd listeners
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend f
    bind 127.0.0.1:%[2]d
    bind [::1]:%[3]d v6only
    bind unix@%[1]s/web.sock
    bind abns@hsw-test-%[2]d
    http-request return status 200
`, dir, p1, p2)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	first := startHAProxy(t, bin, "-f", cfg, "-db")
	testutil.WaitFor(t, 10*time.Second, dir+"/admin.sock to appear", func() bool {
		_, err := os.Stat(filepath.Join(dir, "admin.sock"))
		return err == nil
	})
	got, err := Fetch(context.Background(), filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatalf("Fetch from haproxy: %v", err)
	}
	var descs []string
	inos := map[uint64]bool{}
	for _, s := range got {
		descs = append(descs, s.Describe())
		inos[s.Ino()] = true
	}
	all := strings.Join(descs, ", ")
	for _, want := range []string{fmt.Sprintf("tcp 127.0.0.1:%d", p1), fmt.Sprintf("tcp6 [::1]:%d", p2), "unix " + dir + "/web.sock", fmt.Sprintf("unix @hsw-test-%d", p1), "unix " + dir + "/admin.sock"} {
		if !strings.Contains(all, want) {
			t.Errorf("haproxy's sockets %q lack %q", all, want)
		}
	}
	for _, s := range got {
		if strings.HasPrefix(s.Describe(), "tcp6") && OptsOf(s.FD)&OptV6Only == 0 {
			t.Errorf("%s: v6only not seen on the socket", s.Describe())
		}
	}
	firstHas, err := proc.SocketInodes(first)
	if err != nil {
		t.Fatalf("haproxy's sockets: %v", err)
	}
	for ino := range inos {
		if !firstHas[ino] {
			t.Errorf("socket inode %d received is not one of haproxy's", ino)
		}
	}

	// The holder serves them to a second haproxy with -x.
	h, err := Listen(filepath.Join(dir, "listeners.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go h.Serve()
	defer h.Close()
	h.Add(got)
	second := startHAProxy(t, bin, "-f", cfg, "-db", "-x", h.Path())
	if err := testutil.Poll(10*time.Second, 20*time.Millisecond, func() (bool, string) {
		has, err := proc.SocketInodes(second)
		return err == nil && h.Served() > 0 && haveAll(has, inos), fmt.Sprintf("served %d, its sockets %v (%v)", h.Served(), has, err)
	}); err != nil {
		t.Fatalf("the second haproxy (pid %d) did not take the held sockets %v: %v", second, inos, err)
	}
}

func haveAll(have, want map[uint64]bool) bool {
	n := 0
	for ino := range want {
		if have[ino] {
			n++
		}
	}
	// the admin socket is bound anew by each process (its path is taken
	// over like the others): every socket but at most that one.
	return n >= len(want)-1
}

// startHAProxy starts haproxy as a child of the test process (the holder's
// rule lets only the wrapper's children in: the test process plays the
// wrapper), killed at the end of the test; its output is logged if the test
// failed.
func startHAProxy(t *testing.T, bin string, args ...string) int {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out := &testutil.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	p := testutil.Start(t, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("haproxy %v output:\n%s", args, out.String())
		}
	})
	return p.Pid()
}
