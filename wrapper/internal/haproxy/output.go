package haproxy

import (
	"bufio"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/logx"
)

// Output forwards a generation's stdout and stderr (one pipe) to the
// wrapper's log, line by line, so they never interleave with the wrapper's
// own lines, and keeps the last lines, so that a failed start or reload can
// say why in haproxy's own words. The forwarder never blocks on the log (see
// logx): haproxy is never held up by a stderr that does not drain.
type Output struct {
	f     *os.File
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

const keptLines = 30

// NewOutput starts forwarding what f (a pipe's read end) carries.
func NewOutput(f *os.File) *Output {
	o := &Output{f: f, done: make(chan struct{})}
	go o.forward()
	return o
}

func (o *Output) forward() {
	defer close(o.done)
	defer o.f.Close()
	r := bufio.NewReaderSize(o.f, 16<<10)
	for {
		line, cut, err := logx.ReadLine(r) // bounded: logx.MaxLine
		if line != "" {
			logx.L.Raw(line, cut)
			o.mu.Lock()
			o.lines = append(o.lines, strings.TrimRight(line, "\n"))
			if len(o.lines) > keptLines {
				o.lines = o.lines[len(o.lines)-keptLines:]
			}
			o.mu.Unlock()
		}
		if err != nil {
			if err != io.EOF {
				logx.Debugf("haproxy output: %v", err)
			}
			return
		}
	}
}

// Settle waits (at most d) until the pipe is read to its end: a process's
// exit can be reaped before its last lines are read.
func (o *Output) Settle(d time.Duration) {
	if o == nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-o.done:
	case <-t.C:
	}
}

// Done is closed once the forwarder has returned.
func (o *Output) Done() <-chan struct{} { return o.done }

// Text is the last lines read, joined by newlines.
func (o *Output) Text() string {
	if o == nil {
		return ""
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.lines, "\n")
}

// Conn is the pipe, for a hand-off that duplicates it without touching the
// original's mode.
func (o *Output) Conn() syscall.Conn { return o.f }

// SocketTransferFailed tells whether haproxy's output says it could not take
// the listening sockets over the -x stats socket (no "expose-fd listeners",
// or the old process's socket is gone).
func SocketTransferFailed(out string) bool {
	for _, s := range []string{"Failed to get the sockets from the old process", "Failed to connect to the old process socket",
		"_getsocks"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

// SummarizeCheck keeps haproxy's [ALERT] lines (or the last lines) of its
// output, on one line.
func SummarizeCheck(out string) string {
	var alerts, all []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		all = append(all, l)
		if strings.Contains(l, "[ALERT]") {
			alerts = append(alerts, l)
		}
	}
	pick := alerts
	if len(pick) == 0 {
		pick = all
		if len(pick) > 3 {
			pick = pick[len(pick)-3:]
		}
	}
	if len(pick) > 3 {
		pick = pick[:3]
	}
	msg := strings.Join(pick, " | ")
	if len(msg) > 600 { // keep both ends: a long path must not hide the reason
		msg = msg[:300] + " ... " + msg[len(msg)-300:]
	}
	if msg == "" {
		msg = "no output"
	}
	return msg
}
