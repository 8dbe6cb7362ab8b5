package listeners

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// maxSendFD is haproxy's MAX_SEND_FD: the most descriptors in one message.
const maxSendFD = 253

// maxSockets bounds the count a peer may announce (haproxy's own limit is
// its maxsock).
const maxSockets = 1 << 16

// exchangeTimeout bounds one whole exchange when the context has no
// deadline of its own.
const exchangeTimeout = 5 * time.Second

// Request is what a receiver writes first.
const Request = "_getsocks"

// ErrNoSockets is an exchange that gave no socket: haproxy writes nothing and
// closes when it has none, and also when "_getsocks" failed on its side
// (a stats socket without "expose-fd listeners", an allocation failure).
var ErrNoSockets = errors.New("no socket (nothing exported, or the exchange failed on haproxy's side)")

// Fetch takes copies of the listening sockets of the haproxy that answers
// "_getsocks" on the unix socket at path (a stats socket declared with
// "expose-fd listeners"): the receiving half of the exchange, as haproxy's
// own -x does it. The caller owns the returned descriptors (close-on-exec).
func Fetch(ctx context.Context, path string) ([]Socket, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, exchangeTimeout)
		defer cancel()
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("_getsocks on %s: %w", path, err)
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	dl, _ := ctx.Deadline()
	_ = uc.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = uc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	socks, err := receive(uc)
	if err == nil && len(socks) == 0 {
		err = ErrNoSockets
	}
	if err != nil {
		return nil, fmt.Errorf("_getsocks on %s: %w", path, err)
	}
	return socks, nil
}

// receive is the receiver's side of the exchange on a connected socket.
func receive(uc *net.UnixConn) ([]Socket, error) {
	if _, err := io.WriteString(uc, Request+"\n"); err != nil {
		return nil, err
	}
	var nb [4]byte
	switch n, err := io.ReadFull(uc, nb[:]); {
	case n == 0 && errors.Is(err, io.EOF):
		return nil, nil // a server with no socket writes nothing
	case err != nil:
		return nil, fmt.Errorf("read the number of sockets: %w", err)
	}
	count := int(int32(binary.NativeEndian.Uint32(nb[:])))
	if count < 0 || count > maxSockets {
		return nil, fmt.Errorf("announced %d sockets", count)
	}
	var fds []int
	var payload []byte
	ok := false
	defer func() {
		if !ok {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}()
	buf := make([]byte, maxSendFD*(2+255+255+4))
	oob := make([]byte, unix.CmsgSpace(maxSendFD*4))
	for len(fds) < count {
		n, oobn, flags, _, err := uc.ReadMsgUnix(buf, oob)
		if oobn > 0 {
			got, perr := parseRights(oob[:oobn])
			fds = append(fds, got...)
			if perr != nil {
				return nil, perr
			}
		}
		if err != nil {
			return nil, fmt.Errorf("received %d of %d sockets: %w", len(fds), count, err)
		}
		if n == 0 && oobn == 0 {
			return nil, fmt.Errorf("received %d of %d sockets: connection closed", len(fds), count)
		}
		if flags&unix.MSG_CTRUNC != 0 {
			return nil, errors.New("descriptors truncated (MSG_CTRUNC)")
		}
		payload = append(payload, buf[:n]...)
		// Acknowledge every message, as haproxy's receiver does: the
		// server waits for one after each full batch. Like haproxy's, a
		// failed write is not an error (the server may have closed after
		// its last batch); a broken exchange fails the next read.
		var ack [4]byte
		binary.NativeEndian.PutUint32(ack[:], uint32(len(fds)))
		_, _ = uc.Write(ack[:])
	}
	if len(fds) != count {
		return nil, fmt.Errorf("got %d sockets, %d announced", len(fds), count)
	}
	socks, err := decodePayload(payload, fds)
	if err != nil {
		return nil, err
	}
	ok = true
	return socks, nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("control message: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			return fds, fmt.Errorf("control message: %w", err)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

// decodePayload reads each descriptor's namespace, interface and options.
func decodePayload(p []byte, fds []int) ([]Socket, error) {
	out := make([]Socket, 0, len(fds))
	off := 0
	str := func() (string, error) {
		if off >= len(p) {
			return "", errors.New("payload too short")
		}
		l := int(p[off])
		off++
		if off+l > len(p) {
			return "", errors.New("payload too short")
		}
		s := string(p[off : off+l])
		off += l
		return s, nil
	}
	for _, fd := range fds {
		ns, err := str()
		if err != nil {
			return nil, err
		}
		iface, err := str()
		if err != nil {
			return nil, err
		}
		if off+4 > len(p) {
			return nil, errors.New("payload too short")
		}
		opts := binary.NativeEndian.Uint32(p[off:])
		off += 4
		out = append(out, Socket{FD: fd, NS: ns, Iface: iface, Opts: opts})
	}
	if off != len(p) {
		return nil, fmt.Errorf("%d bytes of payload left over", len(p)-off)
	}
	return out, nil
}

// encodeEntry appends one descriptor's entry to a batch's payload. A name
// longer than 255 bytes cannot be sent (haproxy's own names are shorter).
func encodeEntry(p []byte, s Socket) []byte {
	ns, iface := s.NS, s.Iface
	if len(ns) > 255 {
		ns = ns[:255]
	}
	if len(iface) > 255 {
		iface = iface[:255]
	}
	p = append(p, byte(len(ns)))
	p = append(p, ns...)
	p = append(p, byte(len(iface)))
	p = append(p, iface...)
	return binary.NativeEndian.AppendUint32(p, s.Opts)
}

// send is the server's side of the exchange, once the request was read:
// the count, then batches of at most 253 descriptors, waiting for the
// receiver's acknowledgement after each full batch.
func send(uc *net.UnixConn, socks []Socket) error {
	if len(socks) == 0 {
		return nil // what haproxy does: nothing, then close
	}
	var nb [4]byte
	binary.NativeEndian.PutUint32(nb[:], uint32(len(socks)))
	if _, err := uc.Write(nb[:]); err != nil {
		return fmt.Errorf("send the number of sockets: %w", err)
	}
	for start := 0; start < len(socks); start += maxSendFD {
		batch := socks[start:min(start+maxSendFD, len(socks))]
		var p []byte
		fds := make([]int, len(batch))
		for i, s := range batch {
			p = encodeEntry(p, s)
			fds[i] = s.FD
		}
		n, _, err := uc.WriteMsgUnix(p, unix.UnixRights(fds...), nil)
		if err != nil {
			return fmt.Errorf("send sockets %d-%d: %w", start+1, start+len(batch), err)
		}
		if n != len(p) {
			return fmt.Errorf("send sockets %d-%d: short write (%d of %d bytes)", start+1, start+len(batch), n, len(p))
		}
		if len(batch) == maxSendFD {
			var ack [4]byte
			if _, err := io.ReadFull(uc, ack[:]); err != nil {
				return fmt.Errorf("wait for the acknowledgement of sockets %d-%d: %w", start+1, start+len(batch), err)
			}
		}
	}
	return nil
}

// Send is the server's side of the exchange once the request line was read:
// what haproxy's _getsocks does (the tests' fake haproxy speaks it).
func Send(uc *net.UnixConn, socks []Socket) error { return send(uc, socks) }

// readRequest reads the receiver's request line (at most 64 bytes).
func readRequest(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, 64), 64)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read the request: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
