package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// Upgrade (re-exec) and resource tests: descriptors after a hand-off,
// refused replacement binaries, notify pairing under a signal flood, a
// stderr nobody reads, a pid file on a full file system.

// replaceFile puts content at path under a new inode: written to a
// temporary name in the same folder, then renamed over path.
func replaceFile(t *testing.T, path string, content []byte, mode os.FileMode) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".new-"+filepath.Base(path))
	if err := os.WriteFile(tmp, content, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type fdEntry struct {
	fd     int
	target string
	flags  int64 // from fdinfo, octal
}

// listFDs reads /proc/<pid>/fd with readlink and each fdinfo's flags.
func listFDs(t *testing.T, pid int) []fdEntry {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("list fds of pid %d: %v", pid, err)
	}
	var out []fdEntry
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
		if err != nil {
			continue
		}
		var flags int64 = -1
		for _, l := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(l, "flags:"); ok {
				flags, err = strconv.ParseInt(strings.TrimSpace(v), 8, 64)
				if err != nil {
					t.Fatalf("pid %d fd %d: fdinfo flags %q: %v", pid, fd, v, err)
				}
			}
		}
		out = append(out, fdEntry{fd: fd, target: target, flags: flags})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].fd < out[j].fd })
	return out
}

func describeFDs(fds []fdEntry) string {
	var b strings.Builder
	for _, f := range fds {
		fmt.Fprintf(&b, "  %d -> %s (flags 0%o)\n", f.fd, f.target, f.flags)
	}
	return b.String()
}

const oCloexec = 0o2000000

// auditFDs checks that every wrapper descriptor above 2 is close-on-exec and
// that haproxy shares no pipe or socket with the wrapper but its own output
// pipe (its fds 1 and 2) and its listening sockets (which the wrapper holds).
//
// Descriptors the test process itself inherited without close-on-exec (from
// whatever started "go test") reach the wrapper through os/exec as well; they
// are not the wrapper's doing and are left out (logged).
func auditFDs(t *testing.T, w *wrapperProc, hapid int) {
	t.Helper()
	foreign := map[string]int{}
	for _, f := range listFDs(t, os.Getpid()) {
		if f.fd > 2 && f.flags&oCloexec == 0 {
			foreign[f.target] = f.fd
		}
	}
	wfds := listFDs(t, w.pid())
	hfds := listFDs(t, hapid)
	for _, f := range wfds {
		if fd, ok := foreign[f.target]; ok && fd == f.fd {
			t.Logf("wrapper fd %d (%s): inherited from the test's own environment, not audited", f.fd, f.target)
			continue
		}
		if f.fd > 2 && f.flags&oCloexec == 0 {
			t.Errorf("wrapper fd %d (%s) is not close-on-exec (flags 0%o)", f.fd, f.target, f.flags)
		}
	}
	wrapperHas := map[string]bool{}
	for _, f := range wfds {
		wrapperHas[f.target] = true
	}
	listening := map[string]bool{} // "socket:[INODE]", as /proc/PID/fd names it
	for _, ino := range testutil.ListenInodes(t, hapid, "tcp", "tcp6", "unix") {
		listening[fmt.Sprintf("socket:[%d]", ino)] = true
	}
	own := map[string]bool{}
	for _, f := range hfds {
		if f.fd == 1 || f.fd == 2 {
			own[f.target] = true
		}
	}
	for _, f := range hfds {
		if f.fd <= 2 || own[f.target] {
			continue
		}
		if fd, ok := foreign[f.target]; ok && fd == f.fd {
			continue
		}
		if listening[f.target] {
			continue // a listening socket: the wrapper holds a copy on purpose (package listeners)
		}
		if (strings.HasPrefix(f.target, "pipe:") || strings.HasPrefix(f.target, "socket:")) && wrapperHas[f.target] {
			t.Errorf("haproxy pid %d fd %d holds %s, which the wrapper also holds: leaked into haproxy", hapid, f.fd, f.target)
		}
	}
	if t.Failed() {
		t.Logf("wrapper pid %d fds:\n%shaproxy pid %d fds:\n%s", w.pid(), describeFDs(wfds), hapid, describeFDs(hfds))
	}
}

func TestUpgradeFDAudit(t *testing.T) {
	w := startRealOpts(t, true, wrapperOpts{copy: true})
	held := w.status().HeldSockets
	inodes := listenInodes(t, w.status().PID)
	self, err := os.ReadFile(testutil.Self(t))
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, w.bin, self, 0o755)
	if ans, err := control.RequestText(w.ctlPath, "reload", 30*time.Second); err != nil || !strings.HasPrefix(ans, "ok") {
		t.Fatalf("upgrade reload: %q %v", ans, err)
	}
	w.waitLog("re-executed:", 10*time.Second)
	r := w.waitReloads(1)
	if r.WrapperPID != w.pid() {
		t.Fatalf("wrapper pid %d after the upgrade, want %d (same process)", r.WrapperPID, w.pid())
	}
	testutil.WaitFor(t, 30*time.Second, "the old generation to finish draining", func() bool { return w.status().Draining == 0 })
	auditFDs(t, w, w.status().PID)
	// The held listening sockets crossed the exec: the new image holds
	// them and hands them over.
	if got := w.status().HeldSockets; held == 0 || got != held {
		t.Errorf("held sockets: %d before the upgrade, %d after", held, got)
	}
	if got := listenInodes(t, w.status().PID); !slices.Equal(got, inodes) {
		t.Errorf("listening sockets %v after the upgrade, want %v", got, inodes)
	}
	if t.Failed() {
		t.FailNow()
	}
	base := stableFDCount(t, w.pid())
	before := listFDs(t, w.pid())
	for i := 0; i < 20; i++ {
		if ans, err := control.RequestText(w.ctlPath, "reload", 30*time.Second); err != nil || !strings.HasPrefix(ans, "ok") {
			t.Fatalf("reload %d after the upgrade: %q %v", i+1, ans, err)
		}
	}
	w.waitReloads(r.Reloads + 20)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := w.status()
		n := fdCount(t, w.pid())
		if st.Draining == 0 && n == base {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("wrapper fd count %d after 20 reloads (draining %d), want %d as after the upgrade\nbefore:\n%safter:\n%s",
				n, st.Draining, base, describeFDs(before), describeFDs(listFDs(t, w.pid())))
		}
		time.Sleep(20 * time.Millisecond)
	}
	auditFDs(t, w, w.status().PID)
	if got := listenInodes(t, w.status().PID); !slices.Equal(got, inodes) {
		t.Errorf("listening sockets %v after 20 more reloads, want %v", got, inodes)
	}
	t.Logf("wrapper fds: %d, haproxy fds: %d", base, fdCount(t, w.status().PID))
}

func TestUpgradeRefusedBinaries(t *testing.T) {
	w := startRealOpts(t, true, wrapperOpts{copy: true})
	self, err := os.ReadFile(testutil.Self(t))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, g := range w.status().Generations {
		seen[g.PID] = true
	}
	cases := []struct {
		name   string
		place  func()
		refuse bool
	}{
		{"deleted", func() {
			if err := os.Remove(w.bin); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"truncated", func() { replaceFile(t, w.bin, self[:1000], 0o755) }, true},
		{"shell script", func() { replaceFile(t, w.bin, []byte("#!/bin/sh\nexit 0\n"), 0o755) }, true},
		{"wrong hand-off version", func() {
			replaceFile(t, w.bin, []byte("#!/bin/sh\necho 'haproxy-systemd-wrapper handoff 99'\nexit 0\n"), 0o755)
		}, true},
	}
	reloads := w.status().Reloads
	for _, c := range cases {
		refusedBefore := strings.Count(w.out.String(), "refused")
		c.place()
		ans, err := control.RequestText(w.ctlPath, "reload", 30*time.Second)
		if err != nil || !strings.HasPrefix(ans, "ok") {
			t.Fatalf("%s: reload: %q %v", c.name, ans, err)
		}
		reloads++
		r := w.waitReloads(reloads)
		if r.WrapperPID != w.pid() || w.exited() {
			t.Fatalf("%s: wrapper pid %d (exited %v), want %d", c.name, r.WrapperPID, w.exited(), w.pid())
		}
		for _, g := range r.Generations {
			seen[g.PID] = true
		}
		if pid, err := servedBy(w.addr); err != nil || pid != r.PID {
			t.Fatalf("%s: served by %d (%v), status names pid %d", c.name, pid, err, r.PID)
		}
		refused := strings.Count(w.out.String(), "refused") - refusedBefore
		if refused > 0 {
			out := w.out.String()
			i := strings.LastIndex(out, "refused")
			start := strings.LastIndex(out[:i], "\n") + 1
			end := strings.Index(out[i:], "\n")
			t.Logf("%s: %s", c.name, out[start:i+end])
		}
		if c.refuse && refused != 1 {
			t.Fatalf("%s: %d new \"refused\" lines, want 1", c.name, refused)
		}
		if !c.refuse && refused != 0 {
			t.Fatalf("%s: %d new \"refused\" lines, want none (nothing to execute)", c.name, refused)
		}
		if strings.Contains(w.out.String(), "re-executing") {
			t.Fatalf("%s: the wrapper re-executed", c.name)
		}
	}
	w.signal(syscall.SIGTERM)
	if code := w.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	for p := range seen {
		if proc.Alive(p) {
			t.Errorf("haproxy pid %d still alive after the wrapper exited", p)
		}
	}
}

func TestNotifyPairsUnderFlood(t *testing.T) {
	dir := testutil.ShortDir(t)
	notify := filepath.Join(dir, "notify")
	nc := testutil.ListenNotify(t, notify)
	if err := nc.SetReadBuffer(4 << 20); err != nil {
		t.Logf("SetReadBuffer: %v", err)
	}
	var mu sync.Mutex
	var grams []string
	stopRead := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		b := make([]byte, 8192)
		for {
			_ = nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			n, err := nc.Read(b)
			if err == nil {
				mu.Lock()
				grams = append(grams, string(b[:n]))
				mu.Unlock()
				continue
			}
			select {
			case <-stopRead:
				return
			default:
			}
		}
	}()
	snapshot := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), grams...)
	}
	w := startRealIn(t, dir, "expose-fd listeners", true, wrapperOpts{env: []string{"NOTIFY_SOCKET=" + notify}})
	testutil.WaitFor(t, 10*time.Second, "the first READY=1", func() bool {
		for _, g := range snapshot() {
			if strings.HasPrefix(g, "READY=1") {
				return true
			}
		}
		return false
	})

	const usr2Senders, usr2Each, hupSenders, hupEach, ctlRequests = 5, 100, 2, 25, 20
	var wg sync.WaitGroup
	var sendErrs sync.Map
	// senders goroutines each send sig each times.
	flood := func(sig syscall.Signal, senders, each int) {
		for i := 0; i < senders; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < each; j++ {
					if err := syscall.Kill(w.pid(), sig); err != nil {
						sendErrs.Store(err.Error(), true)
					}
				}
			}()
		}
	}
	flood(syscall.SIGUSR2, usr2Senders, usr2Each)
	flood(syscall.SIGHUP, hupSenders, hupEach)
	answers := make([]string, ctlRequests)
	errs := make([]error, ctlRequests)
	for i := 0; i < ctlRequests; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			answers[i], errs[i] = control.RequestText(w.ctlPath, "reload", 60*time.Second)
		}(i)
	}
	wg.Wait()
	sendErrs.Range(func(k, _ any) bool { t.Errorf("signal: %v", k); return true })
	for i := range answers {
		if errs[i] != nil || !strings.HasPrefix(answers[i], "ok") {
			t.Errorf("control reload %d: %q %v", i, answers[i], errs[i])
		}
	}
	var reloads int
	testutil.WaitFor(t, 60*time.Second, "the reloads to settle", func() bool {
		r := w.status()
		reloads = r.Reloads
		return !r.ReloadInProgress && !r.ReloadPending && r.Reloads >= 1
	})
	w.signal(syscall.SIGTERM)
	if code := w.waitExit(30 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	testutil.WaitFor(t, 5*time.Second, "STOPPING=1", func() bool {
		for _, g := range snapshot() {
			if strings.Contains(g, "STOPPING=1") {
				return true
			}
		}
		return false
	})
	// The wrapper has exited: what it sent is in the socket; the reader
	// takes it until a read times out after the stop request.
	close(stopRead)
	<-readDone
	all := snapshot()

	signals := usr2Senders*usr2Each + hupSenders*hupEach
	var reloading, ready int
	state := "start" // start, ready, reloading, stopping
	for i, g := range all {
		for _, l := range strings.Split(g, "\n") {
			switch l {
			case "RELOADING=1":
				reloading++
				if !strings.Contains(g, "MONOTONIC_USEC=") {
					t.Errorf("datagram %d %q: RELOADING=1 without MONOTONIC_USEC=", i, g)
				}
				if state == "reloading" {
					t.Errorf("datagram %d: RELOADING=1 while the previous reload has no READY=1 yet", i)
				}
				if state == "stopping" {
					t.Errorf("datagram %d: RELOADING=1 after STOPPING=1", i)
				}
				state = "reloading"
			case "READY=1":
				ready++
				switch state {
				case "stopping":
					t.Errorf("datagram %d %q: READY=1 after STOPPING=1", i, g)
				case "ready":
					t.Errorf("datagram %d %q: a second READY=1 for one reload", i, g)
				}
				if state != "stopping" {
					state = "ready"
				}
			case "STOPPING=1":
				state = "stopping"
			}
		}
	}
	if state != "stopping" {
		t.Errorf("last state %q, want stopping", state)
	}
	t.Logf("%d signals + %d control requests -> %d reloads (status), %d RELOADING=1, %d READY=1, %d datagrams", signals, ctlRequests, reloads, reloading, ready, len(all))
	if reloading != reloads {
		t.Errorf("%d RELOADING=1 datagrams, status counts %d reloads", reloading, reloads)
	}
	if ready != reloading+1 {
		t.Errorf("%d READY=1 datagrams, want %d (start + one per reload)", ready, reloading+1)
	}
	if reloads*10 > signals {
		t.Errorf("%d reloads for %d signals: not coalesced", reloads, signals)
	}
	if t.Failed() {
		t.Logf("datagrams:\n%s", strings.Join(all, "\n--\n"))
	}
}

func TestBlockedStderr(t *testing.T) {
	requireRealHAProxy(t)
	dir := testutil.ShortDir(t)
	cfg, addr, stats := realConfig(t, dir, "expose-fd listeners")
	// Many backends without timeouts: each haproxy start (and check)
	// prints a warning per backend, which the wrapper logs.
	var extra strings.Builder
	extra.WriteString("defaults\n    mode http\n")
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&extra, "backend b%d\n    server s 127.0.0.1:1\n", i)
	}
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(extra.String()); err != nil {
		t.Fatal(err)
	}
	f.Close()

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	// A small pipe fills sooner.
	// (Through SyscallConn: Fd would switch the read end to blocking mode
	// and lose its deadlines.)
	if rc, err := pr.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			if _, err := unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 4096); err != nil {
				t.Logf("F_SETPIPE_SZ: %v", err)
			}
		})
	}
	// Its log goes to the small pipe, nobody reads it: "serving" is seen
	// on haproxy's port, not in the log.
	w := startWrapper(t, dir, wrapperOpts{env: []string{"CONFIG=" + cfg, "HAPROXY_BIN=/usr/sbin/haproxy", "HAPROXY_STATS_SOCKET=" + stats},
		stderr: pw, noWait: true})
	w.addr = addr
	pw.Close()
	testutil.WaitFor(t, 30*time.Second, "haproxy to serve", func() bool {
		if w.exited() {
			t.Fatalf("wrapper exited (code %d) before serving", w.p.Code())
		}
		_, err := servedBy(addr)
		return err == nil
	})
	testutil.WaitFor(t, 10*time.Second, "the control socket", func() bool {
		_, err := control.RequestText(w.ctlPath, "status", 2*time.Second)
		return err == nil
	})
	seen := map[int]bool{}
	var slowest time.Duration
	for i := 0; i < 50; i++ {
		w.signal(syscall.SIGUSR2)
		start := time.Now()
		ans, err := control.RequestText(w.ctlPath, "reload", 5*time.Second)
		d := time.Since(start)
		if d > slowest {
			slowest = d
		}
		if err != nil || !strings.HasPrefix(ans, "ok") {
			t.Fatalf("reload %d with stderr blocked: %q %v after %s", i+1, ans, err, d.Round(time.Millisecond))
		}
		for _, g := range w.status().Generations {
			seen[g.PID] = true
		}
	}
	r := w.status()
	t.Logf("%d reloads, slowest control reload %s, log_lines_dropped %d", r.Reloads, slowest.Round(time.Millisecond), r.LogLinesDropped)
	if r.LogLinesDropped == 0 {
		t.Errorf("status reports no dropped log lines with stderr blocked")
	}

	// stderr drains for a while: the wrapper says how many lines it lost.
	var got testutil.Buffer
	stopRead, readDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readDone)
		b := make([]byte, 64<<10)
		for {
			_ = pr.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			n, err := pr.Read(b)
			got.Write(b[:n])
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			select {
			case <-stopRead:
				return
			default:
			}
		}
	}()
	testutil.WaitFor(t, 10*time.Second, "\"log lines dropped\" on stderr once it drains", func() bool {
		return strings.Contains(got.String(), "log lines dropped")
	})
	close(stopRead)
	<-readDone
	for _, l := range strings.Split(got.String(), "\n") {
		if strings.Contains(l, "log lines dropped") {
			t.Logf("drained stderr (%d bytes): %s", len(got.String()), l)
			break
		}
	}

	// Blocked again: more reloads until lines are dropped anew.
	dropped := w.status().LogLinesDropped
	for i := 0; w.status().LogLinesDropped == dropped; i++ {
		if i == 30 {
			t.Fatalf("30 more reloads and no more dropped lines: stderr did not block again")
		}
		start := time.Now()
		ans, err := control.RequestText(w.ctlPath, "reload", 5*time.Second)
		if err != nil || !strings.HasPrefix(ans, "ok") {
			t.Fatalf("reload with stderr blocked again: %q %v after %s", ans, err, time.Since(start).Round(time.Millisecond))
		}
		for _, g := range w.status().Generations {
			seen[g.PID] = true
		}
	}

	w.signal(syscall.SIGTERM)
	select {
	case <-w.p.Done():
	case <-time.After(3 * time.Second):
		t.Fatalf("wrapper still running 3s after SIGTERM with stderr blocked")
	}
	t.Logf("exit code %d", w.p.Code())
	for p := range seen {
		if proc.Alive(p) {
			t.Errorf("haproxy pid %d alive after the wrapper exited", p)
		}
	}
	// Every writer is gone: the pipe reads to its end. The stop came with
	// stderr blocked, so the lines lost then are counted (status) but
	// cannot be reported on stderr.
	_ = pr.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(pr)
	if err != nil {
		t.Fatalf("read the stderr pipe to its end: %v (%d bytes)", err, len(b))
	}
	t.Logf("stderr pipe held %d bytes at exit", len(b))
}

func TestPIDFileFullFilesystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	requireRealHAProxy(t)
	dir := testutil.ShortDir(t)
	mnt := filepath.Join(dir, "full")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	filler := filepath.Join(mnt, "filler")
	fill := func() {
		t.Helper()
		f, err := os.OpenFile(filler, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 512)
		for i := 0; ; i++ {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill: %v", err)
				}
				break
			}
			if i > 1000 {
				t.Fatalf("fill: the 16k tmpfs takes more than 500k")
			}
		}
		// Check that a new file cannot take a byte.
		p := filepath.Join(mnt, "probe")
		if err := os.WriteFile(p, []byte("1\n"), 0o644); err == nil {
			t.Fatalf("the tmpfs is not full: a new file took data")
		}
		os.Remove(p)
	}
	fill()
	pidfile := filepath.Join(mnt, "haproxy.pid")
	w := startRealIn(t, dir, "expose-fd listeners", true, wrapperOpts{env: []string{"PIDFILE=" + pidfile}})
	w.waitLog("pid file", 10*time.Second)
	var warn string
	for _, l := range strings.Split(w.out.String(), "\n") {
		if strings.Contains(l, "pid file") {
			warn = l
			break
		}
	}
	t.Logf("warning: %s", warn)
	if !strings.HasPrefix(warn, "<4>") {
		t.Errorf("the pid file line is not a warning: %q", warn)
	}
	if b, err := os.ReadFile(pidfile); err == nil {
		t.Fatalf("pid file exists on the full file system: %q", b)
	}
	first := w.status().PID

	// Space again: the next reload writes the pid file.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if ans, err := control.RequestText(w.ctlPath, "reload", 30*time.Second); err != nil || !strings.HasPrefix(ans, "ok") {
		t.Fatalf("reload with space: %q %v", ans, err)
	}
	r := w.waitReloads(1)
	second := r.PID
	if second == first {
		t.Fatalf("the reload did not start a new haproxy (pid %d)", first)
	}
	b, err := os.ReadFile(pidfile)
	if err != nil || strings.TrimSpace(string(b)) != itoa(second) {
		t.Fatalf("pid file after the reload with space: %q %v, want %d", b, err, second)
	}
	if pid, err := servedBy(w.addr); err != nil || pid != second {
		t.Fatalf("served by %d (%v), want %d", pid, err, second)
	}

	// Full again: the pid file must not keep naming the old pid.
	fill()
	if ans, err := control.RequestText(w.ctlPath, "reload", 30*time.Second); err != nil || !strings.HasPrefix(ans, "ok") {
		t.Fatalf("reload on a full file system: %q %v", ans, err)
	}
	r = w.waitReloads(2)
	third := r.PID
	b, err = os.ReadFile(pidfile)
	switch {
	case os.IsNotExist(err):
		t.Logf("pid file absent after the reload on a full file system (serving pid %d)", third)
	case err != nil:
		t.Fatalf("read pid file: %v", err)
	case strings.TrimSpace(string(b)) == itoa(third):
		t.Logf("pid file names the new pid %d", third)
	default:
		t.Fatalf("pid file %q after the reload on a full file system; serving pid is %d, old pid %d", b, third, second)
	}
	if n := strings.Count(w.out.String(), "pid file was removed"); n < 2 {
		t.Logf("%d \"pid file was removed\" lines", n)
	}
	w.signal(syscall.SIGTERM)
	if code := w.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}
