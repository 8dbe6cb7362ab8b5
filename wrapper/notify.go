package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// notifier speaks systemd's notify protocol (sd_notify(3)) with plain
// datagrams: no libsystemd. addr is $NOTIFY_SOCKET, a path or "@abstract";
// empty means not under Type=notify, and every send is a no-op. A failure is
// logged once and never stops service.
type notifier struct {
	mu     sync.Mutex
	addr   string
	warned bool
	sent   int // datagrams sent, for the tests and the status
}

func newNotifier(addr string) *notifier { return &notifier{addr: addr} }

// monotonicUsec is CLOCK_MONOTONIC in microseconds, for MONOTONIC_USEC=.
func monotonicUsec() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Sec*1e6 + ts.Nsec/1e3
}

// notifyMessage joins assignments into one datagram. A STATUS= text is kept
// on one line (a newline would start a new assignment).
func notifyMessage(assignments ...string) string {
	var b strings.Builder
	for _, a := range assignments {
		b.WriteString(strings.ReplaceAll(a, "\n", " "))
		b.WriteByte('\n')
	}
	return b.String()
}

// Send sends one datagram made of the assignments. It reports whether a
// datagram was sent.
func (n *notifier) Send(assignments ...string) bool {
	if n == nil || n.addr == "" {
		return false
	}
	err := sendDatagram(n.addr, notifyMessage(assignments...))
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		if !n.warned {
			n.warned = true
			log.Warningf("NOTIFY_SOCKET=%s: %v: systemd will not hear from the wrapper (service is not affected)", n.addr, err)
		}
		return false
	}
	n.sent++
	return true
}

func (n *notifier) Ready(status string, mainPID int) bool {
	return n.Send("READY=1", fmt.Sprintf("MAINPID=%d", mainPID), "STATUS="+status)
}

// Reloading sends RELOADING=1 with MONOTONIC_USEC= in the same datagram, as
// systemd requires for it to count the reload.
func (n *notifier) Reloading(status string) bool {
	return n.Send("RELOADING=1", fmt.Sprintf("MONOTONIC_USEC=%d", monotonicUsec()), "STATUS="+status)
}

func (n *notifier) Stopping(status string) bool {
	return n.Send("STOPPING=1", "STATUS="+status)
}

func (n *notifier) Status(status string) bool { return n.Send("STATUS=" + status) }

// ExtendTimeout asks systemd for more time for the start, reload or stop in
// progress.
func (n *notifier) ExtendTimeout(d time.Duration) bool {
	return n.Send(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", d.Microseconds()))
}

func (n *notifier) Watchdog() bool { return n.Send("WATCHDOG=1") }

func sendDatagram(addr, msg string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// x/sys/unix turns a leading '@' into the abstract namespace's NUL.
	return unix.Sendto(fd, []byte(msg), unix.MSG_NOSIGNAL, &unix.SockaddrUnix{Name: addr})
}
