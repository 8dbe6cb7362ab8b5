package status

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// Healthy tells whether the serving generation answers within timeout.
func (r *Report) Healthy(timeout time.Duration) error {
	if r.Stopping {
		return nil // a stop in progress is not a hang; TimeoutStopSec= bounds it
	}
	for _, g := range r.Generations {
		if g.State == "starting" && !r.Serving {
			return nil // first start in progress, bounded by the start timeout
		}
		if g.State != "serving" {
			continue
		}
		sock := g.Sock
		if sock == "" {
			sock = r.StatsSocket
		}
		if sock == "" {
			if st, _ := proc.Stat(g.PID); st != "R" && st != "S" {
				return fmt.Errorf("haproxy pid %d is not running (state %q)", g.PID, st)
			}
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		info, err := haproxy.ShowInfo(ctx, sock)
		if err != nil {
			return fmt.Errorf("haproxy pid %d does not answer: %w", g.PID, err)
		}
		if info.Pid != g.PID && g.Sock != "" {
			return fmt.Errorf("readiness socket answered by pid %d, not %d", info.Pid, g.PID)
		}
		return nil
	}
	return fmt.Errorf("no haproxy generation serving")
}

// EstablishedConns counts the established TCP connections held by pid: used
// for old generations, whose stats sockets close when they soft-stop.
// established is this network namespace's set of established TCP sockets
// (proc.TCPInodes); nil reads pid's /proc/net tables instead (slower: every
// socket of the host, TIME_WAIT included). -1: pid's descriptors are
// unreadable.
func EstablishedConns(pid int, established map[uint64]bool) int64 {
	own, err := proc.SocketInodes(pid)
	if err != nil {
		return -1
	}
	if established != nil {
		var n int64
		for ino := range own {
			if established[ino] {
				n++
			}
		}
		return n
	}
	inodes := map[string]bool{}
	for ino := range own {
		inodes[strconv.FormatUint(ino, 10)] = true
	}
	var n int64
	for _, f := range []string{"tcp", "tcp6"} {
		n += countEstablished(fmt.Sprintf("/proc/%d/net/%s", pid, f), inodes)
	}
	return n
}

// countEstablished reads a /proc/net/tcp table and counts the ESTABLISHED
// (state 01) sockets whose inode is in inodes.
func countEstablished(path string, inodes map[string]bool) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	return countEstablishedIn(bufio.NewScanner(f), inodes)
}

func countEstablishedIn(sc *bufio.Scanner, inodes map[string]bool) int64 {
	var n int64
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
		if len(f) < 10 || f[3] != "01" {
			continue
		}
		if inodes[f[9]] {
			n++
		}
	}
	return n
}
