// Package handoff carries a running wrapper's state into a new wrapper image
// (an upgrade: the binary on disk is no longer the running one) across
// execve, in the same process, so that the haproxy children stay its own.
//
// What crosses:
//   - a versioned document (JSON) in a memfd whose number is in
//     $HAPROXY_SYSTEMD_WRAPPER_HANDOFF_FD; an unknown version is refused,
//     never guessed;
//   - open files (the control socket, waiting clients, haproxy output
//     pipes) as an ordered list: the document names them by position and
//     gives the descriptor each was duplicated to. Only those duplicates are
//     inheritable; the originals are never touched (their blocking mode and
//     close-on-exec flag stay as they were), so a failed exec leaves the
//     running state exactly as it was. The new image duplicates each into a
//     fresh close-on-exec descriptor and closes the inherited number.
package handoff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// Version is the hand-off format this binary writes and reads.
const Version = 1

// ProbeCommand is the hidden wrapper command that prints ProbeAnswer: a new
// binary that does not answer it exactly is not executed.
const ProbeCommand = "handoff-version"

// ProbeAnswer is what ProbeCommand prints.
func ProbeAnswer() string { return fmt.Sprintf("haproxy-systemd-wrapper handoff %d\n", Version) }

// Doc is the hand-off document.
type Doc struct {
	Version int             `json:"version"`
	Files   []FileRef       `json:"files"`
	State   json.RawMessage `json:"state"`
}

// FileRef names the file at one position of the list, and the descriptor
// number it crosses the exec as.
type FileRef struct {
	Name string `json:"name"`
	FD   int    `json:"fd"`
}

// Named is a file to hand over.
type Named struct {
	Name string
	Conn syscall.Conn
}

// Encode writes the document.
func Encode(d Doc) ([]byte, error) {
	if d.Version == 0 {
		d.Version = Version
	}
	return json.Marshal(d)
}

// ErrVersion is a document of a version this binary does not read.
var ErrVersion = errors.New("hand-off format version not supported")

// Decode reads a document: its version first (anything but Version is
// refused), then the whole, strictly (unknown fields are an error).
func Decode(b []byte) (Doc, error) {
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return Doc{}, fmt.Errorf("hand-off document: %w", err)
	}
	if head.Version == nil {
		return Doc{}, fmt.Errorf("hand-off document has no version: %w", ErrVersion)
	}
	if *head.Version != Version {
		return Doc{}, fmt.Errorf("hand-off document version %d, this binary reads %d: %w", *head.Version, Version, ErrVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d Doc
	if err := dec.Decode(&d); err != nil {
		return Doc{}, fmt.Errorf("hand-off document: %w", err)
	}
	if dec.More() {
		return Doc{}, errors.New("hand-off document: trailing data")
	}
	seen := map[int]bool{}
	for i, f := range d.Files {
		if f.FD < 3 || f.FD > 1<<20 || seen[f.FD] {
			return Doc{}, fmt.Errorf("hand-off document: file %d (%q) has descriptor %d", i, f.Name, f.FD)
		}
		seen[f.FD] = true
	}
	return d, nil
}

// Probe runs the binary at path with ProbeCommand (through run, which must
// kill it when ctx ends) and checks that it answers this hand-off version
// and exits 0 within timeout.
func Probe(ctx context.Context, path string, timeout time.Duration, run func(ctx context.Context, path string, argv []string) (string, unix.WaitStatus, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, ws, err := run(ctx, path, []string{path, ProbeCommand})
	if err != nil {
		return fmt.Errorf("%s %s: %w", path, ProbeCommand, err)
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		return fmt.Errorf("%s %s: %s", path, ProbeCommand, proc.DescribeStatus(ws))
	}
	if out != ProbeAnswer() {
		first, _, _ := strings.Cut(out, "\n")
		if len(first) > 80 {
			first = first[:80]
		}
		return fmt.Errorf("%s %s answered %q, want %q", path, ProbeCommand, first, strings.TrimSpace(ProbeAnswer()))
	}
	return nil
}

// dupInheritable duplicates c's descriptor into a new one without
// close-on-exec, through SyscallConn (File or Fd would switch the original
// to blocking mode).
func dupInheritable(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD, 3) }); err != nil {
		return -1, err
	}
	return nfd, derr
}

// ErrCancelled is returned by Exec when last said no.
var ErrCancelled = errors.New("exec cancelled")

// Exec replaces the process image with path (argv, env), handing over state
// and files. It returns only when the exec did not happen; then everything it
// made is closed again and the running state is untouched. last, when not
// nil, is called at the last moment, after everything is prepared and just
// before execve: it handles whatever the Go runtime still holds (a signal
// that came in meanwhile) and says whether to go on.
//
// Signals over the exec. A Go program cannot keep a signal blocked on all
// its threads: the runtime starts threads with its own mask, and a mask
// changed from a signal handler (as syscall.AllThreadsSyscall does) is
// undone when the handler returns. So a signal caught by any thread of this
// image after last ran would be lost with the image. Instead, from just
// before last until the exec, each signal in fatal (the stop signals) takes
// its default action, set directly in the kernel: one that comes in that
// window ends this process, which is the stop it asked for (the caller's
// sentinel then ends haproxy); one that came before is in the runtime's
// queue, which last empties. The new image's runtime also lets them take
// their default action until its handlers exist. The others that this
// thread blocks (held) stay pending over the exec when they come to this
// thread, and are otherwise handled by this image, or lost with it; a reload
// signal lost that way changes nothing, since the reload under way starts
// its new generation after it.
func Exec(path string, argv, env []string, state any, files []Named, fatal, held []unix.Signal, last func() bool) error {
	raw, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("hand-off state: %w", err)
	}
	var dups []int
	defer func() {
		for _, fd := range dups {
			unix.Close(fd)
		}
	}()
	d := Doc{Version: Version, State: raw}
	for _, f := range files {
		fd, err := dupInheritable(f.Conn)
		if err != nil {
			return fmt.Errorf("hand-off of %s: %w", f.Name, err)
		}
		dups = append(dups, fd)
		d.Files = append(d.Files, FileRef{Name: f.Name, FD: fd})
	}
	b, err := Encode(d)
	if err != nil {
		return err
	}
	mfd, err := unix.MemfdCreate("hsw-handoff", 0) // no MFD_CLOEXEC: it crosses
	if err != nil {
		return fmt.Errorf("hand-off memfd: %w", err)
	}
	dups = append(dups, mfd)
	if err := writeAll(mfd, b); err != nil {
		return fmt.Errorf("hand-off memfd: %w", err)
	}
	env = proc.SetEnv(env, proc.EnvHandoff, strconv.Itoa(mfd))
	env = proc.SetEnv(env, proc.EnvReexec, "1")

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old unix.Sigset_t
	_ = unix.PthreadSigmask(unix.SIG_BLOCK, proc.Sigset(append(append([]unix.Signal{}, held...), fatal...)), &old)
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	restore, err := defaultActions(fatal)
	defer restore() // reached only when the exec did not happen
	if err != nil {
		return fmt.Errorf("signal dispositions: %w", err)
	}
	if last != nil && !last() {
		return ErrCancelled
	}
	err = unix.Exec(path, argv, env)
	return fmt.Errorf("exec %s: %w", path, err)
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	_, err := unix.Seek(fd, 0, 0)
	return err
}

// Received is what a new image got from the previous one.
type Received struct {
	State json.RawMessage
	Files map[string]*os.File // by name; each close-on-exec
	Order []string            // names in list order
}

// Receive reads the hand-off, when this image was started by Exec (ok
// false otherwise). The variables are removed from the environment. Every
// inherited descriptor is moved to a close-on-exec one, even when the
// document is refused, so that none leaks into haproxy.
func Receive() (r Received, ok bool, err error) {
	v, present := os.LookupEnv(proc.EnvHandoff)
	if !present {
		return Received{}, false, nil
	}
	os.Unsetenv(proc.EnvHandoff)
	os.Unsetenv(proc.EnvReexec)
	mfd, perr := strconv.Atoi(v)
	if perr != nil || mfd < 3 {
		return Received{}, true, fmt.Errorf("%s=%q: not a descriptor", proc.EnvHandoff, v)
	}
	unix.CloseOnExec(mfd)
	f := os.NewFile(uintptr(mfd), "handoff")
	b, rerr := readAllFile(f)
	f.Close()
	if rerr != nil {
		return Received{}, true, fmt.Errorf("read hand-off: %w", rerr)
	}
	d, derr := Decode(b)
	if derr != nil {
		// The descriptors' numbers are unknown: nothing to adopt. Mark
		// every descriptor above 2 close-on-exec so none reaches haproxy.
		closeOnExecAll()
		return Received{}, true, derr
	}
	r = Received{State: d.State, Files: map[string]*os.File{}}
	for _, ref := range d.Files {
		nfd, err := unix.FcntlInt(uintptr(ref.FD), unix.F_DUPFD_CLOEXEC, 3)
		unix.Close(ref.FD)
		if err != nil {
			continue
		}
		r.Files[ref.Name] = os.NewFile(uintptr(nfd), ref.Name)
		r.Order = append(r.Order, ref.Name)
	}
	return r, true, nil
}

func readAllFile(f *os.File) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(f)
	return buf.Bytes(), err
}

// closeOnExecAll sets close-on-exec on every open descriptor above 2.
func closeOnExecAll() {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}

// Inheritable lists this process's descriptors above 2 that lack
// close-on-exec: what a child started now would inherit (for tests and an
// audit log line).
func Inheritable() []int {
	var out []int
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && fl&unix.FD_CLOEXEC == 0 {
			out = append(out, fd)
		}
	}
	return out
}

// kSigaction is the kernel's struct sigaction on 64-bit Linux (handler,
// flags, restorer, mask), handled as an opaque value: saved, set to the
// default action, and put back as it was.
type kSigaction struct {
	Handler, Flags, Restorer, Mask uint64
}

// defaultActions sets each signal's disposition to its default action in the
// kernel, under the Go runtime (whose handler would otherwise catch it), and
// returns what puts the saved dispositions back.
func defaultActions(sigs []unix.Signal) (restore func(), err error) {
	var saved []func()
	restore = func() {
		for i := len(saved) - 1; i >= 0; i-- {
			saved[i]()
		}
	}
	for _, sig := range sigs {
		var dfl, prev kSigaction
		_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), uintptr(unsafe.Pointer(&prev)), 8, 0, 0)
		if errno != 0 {
			return restore, fmt.Errorf("%s: %w", unix.SignalName(sig), errno)
		}
		saved = append(saved, func() {
			_, _, _ = unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&prev)), 0, 8, 0, 0)
		})
	}
	return restore, nil
}
