// Package listeners holds copies of haproxy's listening sockets for as long
// as the service is meant to listen, and hands them to every new haproxy
// generation with haproxy's own socket exchange ("_getsocks", the other end
// of haproxy's -x):
//
//   - Fetch takes copies of a serving haproxy's listening sockets from its
//     private stats socket (declared with "expose-fd listeners");
//   - a Holder keeps them and answers "_getsocks" on a socket of its own in
//     the wrapper's private folder, so "-x" works on every reload without any
//     configuration, after a crash (the dead process cannot answer), and on
//     the first start after a restart (sockets that systemd kept in its file
//     descriptor store, or bound for a .socket unit, see FromEnv).
//
// The exchange (haproxy >= 1.8, src/cli.c _getsocks and
// sock_get_old_sockets in src/sock.c, src/haproxy.c before 2.3): the client
// writes "_getsocks\n"; the server writes the number of sockets as a native
// int, then the descriptors with SCM_RIGHTS in batches of at most 253, each
// batch's payload holding per descriptor a length byte and the network
// namespace's name, a length byte and the interface's name, and a 32-bit
// field: the listener's options before 2.3 (of which the receiver compares
// FOREIGN, V6ONLY and V4V6), zero since. The receiver acknowledges every
// message it reads with a native int; the server waits for one after each
// full batch. A server with no socket writes nothing and closes (every
// release). The receiver matches sockets to its "bind" lines by address,
// family, interface, namespace (and, before 2.3, those options) and closes
// the rest.
package listeners

import (
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
)

// Listener options haproxy 1.8-2.2 sends and compares (LI_O_* in
// include/types/listener.h, include/haproxy/listener-t.h).
const (
	OptForeign uint32 = 0x0002 // "transparent": IP_TRANSPARENT
	OptV6Only  uint32 = 0x0400 // "v6only"
	OptV4V6    uint32 = 0x0800 // "v4v6"
)

// Socket is one listening socket: an open descriptor and what haproxy says
// of it.
//
// FD is a raw descriptor, never an *os.File: the socket's open file
// description is shared with haproxy (SCM_RIGHTS and dup keep it), and
// os.File's Fd would switch it to blocking mode under haproxy's accept.
type Socket struct {
	FD    int
	NS    string // network namespace name ("namespace" on the bind line)
	Iface string // interface name ("interface" on the bind line)
	Opts  uint32 // listener options (haproxy 1.8-2.2), else 0
	// Name is the FDNAME systemd passed the socket under (FromEnv), ""
	// for a socket taken from haproxy.
	Name string
}

// Ino is the socket's inode: the same number in every process that holds
// the socket, and a different one for every other socket.
func (s Socket) Ino() uint64 {
	var st unix.Stat_t
	if err := unix.Fstat(s.FD, &st); err != nil {
		return 0
	}
	return st.Ino
}

// Describe names the socket as a log line would: "tcp 127.0.0.1:8080",
// "tcp6 [::1]:8080", "udp 0.0.0.0:443", "unix /run/haproxy/admin.sock",
// "unix @name", with its interface and namespace.
func (s Socket) Describe() string {
	d := describeFD(s.FD)
	if s.Iface != "" {
		d += " interface " + s.Iface
	}
	if s.NS != "" {
		d += " namespace " + s.NS
	}
	return d
}

// UnixPath is the path a unix socket is bound to ("" for another family or
// an abstract one).
func (s Socket) UnixPath() string {
	sa, err := unix.Getsockname(s.FD)
	if err != nil {
		return ""
	}
	if u, ok := sa.(*unix.SockaddrUnix); ok && !strings.HasPrefix(u.Name, "@") {
		return haproxy.BoundPath(u.Name)
	}
	return ""
}

func describeFD(fd int) string {
	typ, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fmt.Sprintf("socket fd %d (%v)", fd, err)
	}
	proto := "tcp"
	if typ == unix.SOCK_DGRAM {
		proto = "udp"
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return fmt.Sprintf("%s %s", proto, netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)))
	case *unix.SockaddrInet6:
		return fmt.Sprintf("%s6 %s", proto, netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)))
	case *unix.SockaddrUnix:
		kind := "unix"
		if typ == unix.SOCK_DGRAM {
			kind = "unixgram"
		}
		if a.Name == "" {
			return kind + " (unnamed)"
		}
		return kind + " " + haproxy.BoundPath(a.Name)
	}
	return fmt.Sprintf("socket fd %d (family %T)", fd, sa)
}

// Listening tells whether fd is a socket haproxy could listen on: a stream
// socket in the listening state, or a bound datagram socket.
func Listening(fd int) bool {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return false
	}
	if typ == unix.SOCK_DGRAM {
		_, err := unix.Getsockname(fd)
		return err == nil
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	return err == nil && acc == 1
}

// OptsOf computes, from the socket itself, the listener options haproxy
// 1.8-2.2 compares: FOREIGN when it is transparent, V6ONLY for an IPv6
// socket that is v6only. (V4V6 is a bind keyword the socket cannot tell from
// the kernel's default: a socket systemd binds is matched to a "bind" line
// without it.) haproxy 2.3 and later read them from the socket and ignore
// the field.
func OptsOf(fd int) uint32 {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return 0
	}
	var o uint32
	switch sa.(type) {
	case *unix.SockaddrInet4:
		if v, err := unix.GetsockoptInt(fd, unix.SOL_IP, unix.IP_TRANSPARENT); err == nil && v != 0 {
			o |= OptForeign
		}
	case *unix.SockaddrInet6:
		if v, err := unix.GetsockoptInt(fd, unix.SOL_IPV6, unix.IPV6_TRANSPARENT); err == nil && v != 0 {
			o |= OptForeign
		}
		if v, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); err == nil && v != 0 {
			o |= OptV6Only
		}
	}
	return o
}

// Close closes the socket's descriptor (this copy only).
func (s Socket) Close() {
	if s.FD >= 0 {
		_ = unix.Close(s.FD)
	}
}

// CloseAll closes every socket's descriptor.
func CloseAll(socks []Socket) {
	for _, s := range socks {
		s.Close()
	}
}

// dup returns a close-on-exec copy of the socket's descriptor (the same
// socket, the same open file description).
func (s Socket) dup() (Socket, error) {
	fd, err := unix.FcntlInt(uintptr(s.FD), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return Socket{FD: -1}, err
	}
	s.FD = fd
	return s, nil
}
