package proc

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// inodeOf is the socket inode behind a connection or listener.
func inodeOf(t *testing.T, c syscall.Conn) uint64 {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Fstat(int(fd), &st) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return st.Ino
}

// TestTCPInodes asks sock_diag for established and listening sockets and
// finds exactly those of a loopback listener and one connection, in the
// right state; SocketInodes finds them among this process's descriptors.
func TestTCPInodes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	lnIno := inodeOf(t, ln.(*net.TCPListener))
	cIno, sIno := inodeOf(t, client.(*net.TCPConn)), inodeOf(t, server.(*net.TCPConn))

	est, err := TCPInodes(1 << TCPEstablished)
	if err != nil {
		t.Fatalf("TCPInodes(established): %v", err)
	}
	if !est[cIno] || !est[sIno] || est[lnIno] {
		t.Errorf("established set: client %v server %v listener %v, want true true false", est[cIno], est[sIno], est[lnIno])
	}
	lis, err := TCPInodes(1 << TCPListen)
	if err != nil {
		t.Fatalf("TCPInodes(listen): %v", err)
	}
	if !lis[lnIno] || lis[cIno] {
		t.Errorf("listening set: listener %v client %v, want true false", lis[lnIno], lis[cIno])
	}
	own, err := SocketInodes(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for name, ino := range map[string]uint64{"listener": lnIno, "client": cIno, "server": sIno} {
		if !own[ino] {
			t.Errorf("SocketInodes misses the %s's inode %d", name, ino)
		}
	}
}

// diagMsg is one netlink message of a sock_diag answer: its type, sequence
// number and payload.
func diagMsg(typ uint16, seq uint32, payload []byte) []byte {
	l := unix.SizeofNlMsghdr + len(payload)
	b := make([]byte, (l+3)&^3)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(l))
	ne.PutUint16(b[4:], typ)
	ne.PutUint32(b[8:], seq)
	copy(b[unix.SizeofNlMsghdr:], payload)
	return b
}

// TestParseDiagAnswer: the sockets' inodes are read from the messages of
// this request only; the dump ends at NLMSG_DONE, and a dump that failed
// half-way (a negative errno in NLMSG_DONE's payload, as the kernel's
// netlink_dump_done writes it) or an NLMSG_ERROR is an error, never an
// empty list.
func TestParseDiagAnswer(t *testing.T) {
	sock := func(ino uint32) []byte {
		p := make([]byte, inetDiagMsgInode+4)
		binary.NativeEndian.PutUint32(p[inetDiagMsgInode:], ino)
		return p
	}
	errno := func(e unix.Errno) []byte {
		p := make([]byte, 4)
		binary.NativeEndian.PutUint32(p, uint32(-int32(e)))
		return p
	}
	const seq = 7
	for _, tc := range []struct {
		name   string
		answer []byte
		done   bool
		err    error // errors.Is
		anyErr bool
		inodes []uint64
	}{
		{"sockets then done", slices.Concat(diagMsg(unix.SOCK_DIAG_BY_FAMILY, seq, sock(11)), diagMsg(unix.SOCK_DIAG_BY_FAMILY, seq, sock(12)), diagMsg(unix.NLMSG_DONE, seq, make([]byte, 4))), true, nil, false, []uint64{11, 12}},
		{"more to come", diagMsg(unix.SOCK_DIAG_BY_FAMILY, seq, sock(11)), false, nil, false, []uint64{11}},
		{"another request's", slices.Concat(diagMsg(unix.SOCK_DIAG_BY_FAMILY, seq+1, sock(99)), diagMsg(unix.NLMSG_DONE, seq, nil)), true, nil, false, nil},
		{"dump failed in done", slices.Concat(diagMsg(unix.SOCK_DIAG_BY_FAMILY, seq, sock(11)), diagMsg(unix.NLMSG_DONE, seq, errno(unix.ENOENT))), true, unix.ENOENT, true, []uint64{11}},
		{"error answer", diagMsg(unix.NLMSG_ERROR, seq, errno(unix.EPERM)), true, unix.EPERM, true, nil},
		{"malformed", []byte{200, 0, 0, 0, 3, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0}, false, nil, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := map[uint64]bool{}
			done, err := parseDiagAnswer(tc.answer, seq, out)
			if done != tc.done || (err != nil) != tc.anyErr || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Errorf("done %v, err %v; want done %v, error %v (%v)", done, err, tc.done, tc.anyErr, tc.err)
			}
			var got []uint64
			for ino := range out {
				got = append(got, ino)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.inodes) {
				t.Errorf("inodes %v, want %v", got, tc.inodes)
			}
		})
	}
}
