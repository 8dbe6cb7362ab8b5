package proc

import (
	"net"
	"os"
	"syscall"
	"testing"
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
