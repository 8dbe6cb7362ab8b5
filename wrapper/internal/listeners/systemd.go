package listeners

import (
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// listenFDsStart is SD_LISTEN_FDS_START: systemd passes sockets from fd 3.
const listenFDsStart = 3

// namePrefix marks the names the wrapper gives the sockets it puts in
// systemd's file descriptor store.
const namePrefix = "hsw"

// StoreName is the FDNAME= under which a held socket is kept in systemd's
// file descriptor store: unique per socket (its inode) and carrying what
// "_getsocks" sends with it, so that the first start after a restart hands
// it over exactly as the last generation had it:
// "hsw.INODE.OPTS.NS.IFACE", numbers in decimal and hexadecimal, names in
// hexadecimal (systemd allows printable ASCII but ':', at most 255 bytes; a
// name that would be longer leaves the names out).
func StoreName(s Socket) string {
	n := fmt.Sprintf("%s.%d.%x.%s.%s", namePrefix, s.Ino(), s.Opts, hex.EncodeToString([]byte(s.NS)), hex.EncodeToString([]byte(s.Iface)))
	if len(n) > 255 {
		n = fmt.Sprintf("%s.%d.%x..", namePrefix, s.Ino(), s.Opts)
	}
	return n
}

// parseStoreName reads a StoreName; ok is false for any other name (a
// .socket unit's, "stored", "unknown").
func parseStoreName(name string) (opts uint32, ns, iface string, ok bool) {
	f := strings.Split(name, ".")
	if len(f) != 5 || f[0] != namePrefix {
		return 0, "", "", false
	}
	if _, err := strconv.ParseUint(f[1], 10, 64); err != nil {
		return 0, "", "", false
	}
	o, err := strconv.ParseUint(f[2], 16, 32)
	if err != nil {
		return 0, "", "", false
	}
	nsb, err1 := hex.DecodeString(f[3])
	ifb, err2 := hex.DecodeString(f[4])
	if err1 != nil || err2 != nil {
		return 0, "", "", false
	}
	return uint32(o), string(nsb), string(ifb), true
}

// IsStoreName tells whether name is one the wrapper gave a socket in
// systemd's file descriptor store (StoreName).
func IsStoreName(name string) bool {
	_, _, _, ok := parseStoreName(name)
	return ok
}

// ParseListenEnv reads systemd's socket-passing variables (sd_listen_fds(3)):
// how many descriptors from fd 3 on are this process's, and their names.
// Nothing is passed (n == 0, no error) when LISTEN_PID is unset or names
// another process, as sd_listen_fds requires.
func ParseListenEnv(listenPID, listenFDs, listenNames string, pid int) (n int, names []string, err error) {
	if listenPID == "" && listenFDs == "" {
		return 0, nil, nil
	}
	p, err := strconv.Atoi(listenPID)
	if err != nil || p <= 0 {
		return 0, nil, fmt.Errorf("LISTEN_PID=%q is not a pid: sockets passed by systemd ignored", listenPID)
	}
	if p != pid {
		return 0, nil, nil
	}
	n, err = strconv.Atoi(listenFDs)
	if err != nil || n < 0 || n > maxSockets {
		return 0, nil, fmt.Errorf("LISTEN_FDS=%q is not a count of descriptors: sockets passed by systemd ignored", listenFDs)
	}
	if listenNames != "" {
		names = strings.Split(listenNames, ":")
	}
	for len(names) < n {
		names = append(names, "unknown")
	}
	return n, names[:n], nil
}

// Inherited is what FromEnv found: the sockets to hand over, and one line
// for each passed descriptor that is not one.
type Inherited struct {
	Sockets []Socket
	Notes   []string
}

// inheritFrom takes the n descriptors passed from fd start on (systemd's
// from 3, a -D parent's after its pipe): each listening socket is held,
// with the namespace, interface and options its store name carries, or,
// for a socket a .socket unit bound, the options computed from the socket
// itself; anything else is closed with a note. The descriptors are made
// close-on-exec.
func inheritFrom(start, n int, names []string) Inherited {
	var in Inherited
	for i := 0; i < n; i++ {
		fd := start + i
		name := "unknown"
		if i < len(names) {
			name = names[i]
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			in.Notes = append(in.Notes, fmt.Sprintf("descriptor %d (%s) passed by systemd is not open: ignored", fd, name))
			continue
		}
		unix.CloseOnExec(fd)
		if !Listening(fd) {
			in.Notes = append(in.Notes, fmt.Sprintf("descriptor %d (%s) passed by systemd is not a listening socket (%s): closed", fd, name, describeFD(fd)))
			unix.Close(fd)
			continue
		}
		s := Socket{FD: fd, Name: name}
		if opts, ns, iface, ok := parseStoreName(name); ok {
			s.Opts, s.NS, s.Iface = opts, ns, iface
		} else {
			s.Opts = OptsOf(fd)
		}
		in.Sockets = append(in.Sockets, s)
	}
	return in
}

// FromEnv takes the sockets systemd passed to this process (LISTEN_PID,
// LISTEN_FDS, LISTEN_FDNAMES: its file descriptor store after a restart,
// or a .socket unit), or that a -D parent passed on after its pipe
// (proc.EnvDaemonListen), with a note for each variable or descriptor it
// could not take. The variables are removed in any case, so that no later
// image or child reads them; an upgrade's new image (resumed) takes
// nothing, its held sockets came with the hand-off.
func FromEnv(resumed bool) Inherited {
	pid, fds, names := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	daemonFDs, fromParent := os.LookupEnv(proc.EnvDaemonListen)
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", proc.EnvDaemonListen} {
		os.Unsetenv(k)
	}
	if resumed {
		return Inherited{}
	}
	start := listenFDsStart
	if fromParent {
		pid, fds, start = strconv.Itoa(os.Getpid()), daemonFDs, listenFDsStart+1
	}
	n, nameList, err := ParseListenEnv(pid, fds, names, os.Getpid())
	if err != nil {
		return Inherited{Notes: []string{err.Error()}}
	}
	return inheritFrom(start, n, nameList)
}
