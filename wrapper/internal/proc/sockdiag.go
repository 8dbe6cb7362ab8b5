package proc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// TCP states as the kernel numbers them (include/net/tcp_states.h).
const (
	TCPEstablished = 1
	TCPListen      = 10
)

// Layout of the kernel's sock_diag structures (linux/inet_diag.h).
const (
	inetDiagSockIDSize = 48                          // sport, dport, src[4], dst[4], if, cookie[2]
	inetDiagReqV2Size  = 8 + inetDiagSockIDSize      // family, protocol, ext, pad, states, id
	inetDiagMsgInode   = 4 + inetDiagSockIDSize + 16 // after family..retrans, id, expires, rqueue, wqueue, uid
)

// TCPInodes lists the inodes of this network namespace's TCP sockets, IPv4
// and IPv6, in the states of mask (1<<TCPEstablished, ...). It asks the
// kernel through sock_diag (netlink), which filters by state itself: unlike
// /proc/net/tcp it does not hand over every TIME_WAIT socket of the host,
// which a busy load balancer has by the ten thousand.
func TCPInodes(mask uint32) (map[uint64]bool, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 2}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	out := map[uint64]bool{}
	for seq, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := sockDiagDump(fd, uint32(seq+1), family, mask, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func sockDiagDump(fd int, seq uint32, family uint8, mask uint32, out map[uint64]bool) error {
	req := make([]byte, unix.SizeofNlMsghdr+inetDiagReqV2Size)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	body := req[unix.SizeofNlMsghdr:]
	body[0] = family
	body[1] = unix.IPPROTO_TCP
	ne.PutUint32(body[4:], mask)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag request: %w", err)
	}
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("sock_diag answer: %w", err)
		}
		if done, err := parseDiagAnswer(buf[:n], seq, out); done || err != nil {
			return err
		}
	}
}

// parseDiagAnswer reads one datagram of a sock_diag dump's answer to the
// request seq, adding the inodes it lists to out; done tells that the dump
// ended (NLMSG_DONE), err that it failed.
func parseDiagAnswer(b []byte, seq uint32, out map[uint64]bool) (done bool, err error) {
	ne := binary.NativeEndian
	for len(b) >= unix.SizeofNlMsghdr {
		l := int(ne.Uint32(b[0:]))
		typ, mseq := ne.Uint16(b[4:]), ne.Uint32(b[8:])
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return false, errors.New("sock_diag: malformed answer")
		}
		data := b[unix.SizeofNlMsghdr:l]
		b = b[min((l+3)&^3, len(b)):]
		if mseq != seq {
			continue
		}
		switch typ {
		case unix.NLMSG_DONE:
			// A dump that failed half-way says so here, not in an
			// NLMSG_ERROR: a negative errno in the payload.
			if len(data) >= 4 {
				if code := int32(ne.Uint32(data)); code < 0 {
					return true, fmt.Errorf("sock_diag dump: %w", unix.Errno(-code))
				}
			}
			return true, nil
		case unix.NLMSG_ERROR:
			if len(data) >= 4 {
				if code := int32(ne.Uint32(data)); code != 0 {
					return true, fmt.Errorf("sock_diag: %w", unix.Errno(-code))
				}
			}
			return true, errors.New("sock_diag: error answer")
		}
		if len(data) >= inetDiagMsgInode+4 {
			out[uint64(ne.Uint32(data[inetDiagMsgInode:]))] = true
		}
	}
	return false, nil
}

// ownNetNS is this process's network namespace, the one sock_diag answers
// for ("net:[INODE]"; "" when /proc does not say).
var ownNetNS = sync.OnceValue(func() string {
	ns, _ := os.Readlink("/proc/self/ns/net")
	return ns
})

// SameNetNS tells whether pid is in this process's network namespace, so
// that what TCPInodes lists covers its sockets (a HAPROXY_BIN that runs
// haproxy through "ip netns exec" puts it in another).
func SameNetNS(pid int) bool {
	other, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/net")
	return err == nil && other != "" && other == ownNetNS()
}

// SocketInodes lists the inodes of the sockets among pid's descriptors.
func SocketInodes(pid int) (map[uint64]bool, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	fds, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[uint64]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(dir + "/" + fd.Name())
		if err != nil {
			continue
		}
		if s, ok := strings.CutPrefix(l, "socket:["); ok {
			if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
				out[ino] = true
			}
		}
	}
	return out, nil
}
