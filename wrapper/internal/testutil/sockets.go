package testutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// ListenInodes is the inodes, in order, of the sockets in LISTEN state that
// pid holds among its own descriptors, found in the /proc/PID/net tables
// named: "tcp", "tcp6", "unix". The test fails when pid's descriptors or a
// table cannot be read; a table the kernel does not have (tcp6 without IPv6)
// lists nothing.
func ListenInodes(t testing.TB, pid int, tables ...string) []uint64 {
	t.Helper()
	if len(tables) == 0 {
		t.Fatal("ListenInodes: no /proc/PID/net table named")
	}
	mine, err := proc.SocketInodes(pid)
	if err != nil {
		t.Fatalf("the sockets of pid %d: %v", pid, err)
	}
	var out []uint64
	for _, table := range tables {
		ls, err := listening(strconv.Itoa(pid), table)
		if err != nil {
			t.Fatalf("the listening sockets of pid %d: %v", pid, err)
		}
		for _, l := range ls {
			if mine[l.inode] {
				out = append(out, l.inode)
			}
		}
	}
	slices.Sort(out)
	return out
}

// ListenInodesOnPort is the inodes, in order, of the TCP sockets in LISTEN
// state on 127.0.0.1:port in the test's network namespace, whoever holds
// them. The test fails when /proc/self/net/tcp cannot be read.
func ListenInodesOnPort(t testing.TB, port int) []uint64 {
	t.Helper()
	ls, err := listening("self", "tcp")
	if err != nil {
		t.Fatalf("the sockets listening on 127.0.0.1:%d: %v", port, err)
	}
	want := fmt.Sprintf("0100007F:%04X", port) // as the table writes 127.0.0.1:port
	var out []uint64
	for _, l := range ls {
		if l.local == want {
			out = append(out, l.inode)
		}
	}
	slices.Sort(out)
	return out
}

// listenRow is a socket in LISTEN state in a /proc/PID/net table.
type listenRow struct {
	local string // the local address as the table writes it ("0100007F:1F90"); "" for a unix socket
	inode uint64
}

// listening reads the sockets in LISTEN state in /proc/PID/net/TABLE, pid a
// number or "self", table "tcp", "tcp6" or "unix". A table the kernel does
// not have lists nothing.
func listening(pid, table string) ([]listenRow, error) {
	local, inode, state := 1, 9, "0A" // TCP_LISTEN in column st
	switch table {
	case "tcp", "tcp6":
	case "unix":
		local, inode, state = -1, 6, "00010000" // __SO_ACCEPTCON in column Flags
	default:
		return nil, fmt.Errorf("no /proc/PID/net table %q: want tcp, tcp6 or unix", table)
	}
	path := "/proc/" + pid + "/net/" + table
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []listenRow
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) <= inode || f[3] != state {
			continue
		}
		ino, err := strconv.ParseUint(f[inode], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: inode in %q: %v", path, line, err)
		}
		r := listenRow{inode: ino}
		if local >= 0 {
			r.local = f[local]
		}
		out = append(out, r)
	}
	return out, nil
}
