// Package sdnotify speaks systemd's notify protocol (sd_notify(3)) with plain
// datagrams: no libsystemd.
package sdnotify

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/logx"
)

// Notifier sends to systemd. addr is $NOTIFY_SOCKET, a path or "@abstract";
// empty means not under Type=notify, and every send is a no-op. A failure is
// logged once and never stops service.
type Notifier struct {
	mu     sync.Mutex
	addr   string
	warned bool
	// stopping is set by Stopping: READY=1 and RELOADING=1 are not sent
	// after it.
	stopping bool
	sent     int // datagrams sent, for the tests and the status
}

func New(addr string) *Notifier { return &Notifier{addr: addr} }

// MonotonicUsec is CLOCK_MONOTONIC in microseconds, for MONOTONIC_USEC=.
func MonotonicUsec() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Sec*1e6 + ts.Nsec/1e3
}

// Message joins assignments into one datagram. A STATUS= text is kept
// on one line (a newline would start a new assignment).
func Message(assignments ...string) string {
	var b strings.Builder
	for _, a := range assignments {
		b.WriteString(strings.ReplaceAll(a, "\n", " "))
		b.WriteByte('\n')
	}
	return b.String()
}

// Send sends one datagram made of the assignments. It reports whether a
// datagram was sent.
func (n *Notifier) Send(assignments ...string) bool {
	return n.send(Message(assignments...), nil)
}

// send sends msg with the control data oob (descriptors), once.
func (n *Notifier) send(msg string, oob []byte) bool {
	if n == nil || n.addr == "" {
		return false
	}
	err := sendMsg(n.addr, msg, oob)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		if !n.warned {
			n.warned = true
			logx.Warningf("NOTIFY_SOCKET=%s: %v: systemd will not hear from the wrapper (service is not affected)", n.addr, err)
		}
		return false
	}
	n.sent++
	return true
}

// Ready sends READY=1 with MAINPID= and STATUS=. After Stopping it sends
// nothing: systemd must never hear READY=1 after STOPPING=1.
func (n *Notifier) Ready(status string, mainPID int) bool {
	if n.isStopping() {
		return false
	}
	return n.Send("READY=1", fmt.Sprintf("MAINPID=%d", mainPID), "STATUS="+status)
}

// Reloading sends RELOADING=1 with MONOTONIC_USEC= in the same datagram, as
// systemd requires for it to count the reload.
func (n *Notifier) Reloading(status string) bool {
	if n.isStopping() {
		return false
	}
	return n.Send("RELOADING=1", fmt.Sprintf("MONOTONIC_USEC=%d", MonotonicUsec()), "STATUS="+status)
}

func (n *Notifier) Stopping(status string) bool {
	if n != nil {
		n.mu.Lock()
		n.stopping = true
		n.mu.Unlock()
	}
	return n.Send("STOPPING=1", "STATUS="+status)
}

func (n *Notifier) Status(status string) bool { return n.Send("STATUS=" + status) }

// ExtendTimeout asks systemd for more time for the start, reload or stop in
// progress.
func (n *Notifier) ExtendTimeout(d time.Duration) bool {
	return n.Send(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", d.Microseconds()))
}

func (n *Notifier) Watchdog() bool { return n.Send("WATCHDOG=1") }

// StoreFD puts descriptor fd in the service's file descriptor store under
// name (FDSTORE=1, FDNAME=): systemd keeps it while the unit runs or
// restarts, and passes it back at the next start (LISTEN_FDS). The unit
// needs FileDescriptorStoreMax=. It reports whether the datagram was sent.
func (n *Notifier) StoreFD(name string, fd int) bool {
	return n.send(Message("FDSTORE=1", "FDNAME="+name), unix.UnixRights(fd))
}

// RemoveFD drops the descriptors stored under name (FDSTOREREMOVE=1).
func (n *Notifier) RemoveFD(name string) bool {
	return n.Send("FDSTOREREMOVE=1", "FDNAME="+name)
}

func sendMsg(addr, msg string, oob []byte) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// x/sys/unix turns a leading '@' into the abstract namespace's NUL.
	return unix.Sendmsg(fd, []byte(msg), oob, &unix.SockaddrUnix{Name: addr}, unix.MSG_NOSIGNAL)
}

// Addr is $NOTIFY_SOCKET ("" when not under Type=notify).
func (n *Notifier) Addr() string { return n.addr }

// Warned tells whether the one warning about an unusable socket was logged.
func (n *Notifier) Warned() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.warned
}

// SetWarned carries the warning's state across a re-exec.
func (n *Notifier) SetWarned(w bool) {
	n.mu.Lock()
	n.warned = w
	n.mu.Unlock()
}

// Sent is the number of datagrams sent.
func (n *Notifier) Sent() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sent
}

// WatchdogInterval returns the ping period (half of WATCHDOG_USEC), or 0 when
// the watchdog is not meant for this process.
func WatchdogInterval(usec int64, wpid, mypid int) time.Duration {
	if usec <= 0 || (wpid != 0 && wpid != mypid) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

func (n *Notifier) isStopping() bool {
	if n == nil {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stopping
}
