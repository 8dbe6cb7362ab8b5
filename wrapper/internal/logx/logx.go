// Package logx is the wrapper's log: one line per event on stderr,
// "<N>haproxy-systemd-wrapper: msg", with the sd-daemon priority prefix that
// journald turns into the entry's priority and no timestamp (journald adds
// one).
//
// Logging never blocks the caller: lines go into a bounded queue that one
// goroutine writes out. When the writer does not drain (stderr is a pipe that
// nobody reads), new lines are dropped and counted, and once the writer
// drains again one line says how many were lost. The supervisor loop can
// therefore never freeze on a log write.
package logx

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// sd-daemon priorities (sd-daemon.h).
const (
	Err     = 3
	Warning = 4
	Notice  = 5
	Info    = 6
	Debug   = 7
)

// ParseLevel reads a level name: err, warning, notice, info or debug.
func ParseLevel(s string) (int, bool) {
	switch strings.ToLower(s) {
	case "err", "error":
		return Err, true
	case "warning", "warn":
		return Warning, true
	case "notice":
		return Notice, true
	case "info":
		return Info, true
	case "debug":
		return Debug, true
	}
	return 0, false
}

// MaxLine bounds every line the wrapper writes, its newline included: its
// own log lines, haproxy's output passed through, and the commands' error
// lines. A longer line keeps its beginning and its last TailKeep bytes
// (where haproxy and the kernel put the reason: "... : File name too long"),
// and ends with how many bytes were cut (Bound). A 64 KiB path repeated in
// full helps neither journald (it splits lines past its LineMax=) nor a
// person reading the log.
const MaxLine = 4096

// TailKeep is how much of a long line's end is kept.
const TailKeep = 512

// Bound returns line (without its newline) cut to fit MaxLine once its
// newline is added: "BEGINNING ... END [N bytes cut]". alreadyCut counts
// bytes that ReadLine dropped just before line's last TailKeep bytes. Cuts
// fall on UTF-8 character boundaries.
func Bound(line string, alreadyCut int) string {
	if len(line)+1 <= MaxLine && alreadyCut == 0 {
		return line
	}
	const sep = " ... "
	// Room for the note with the largest count it can carry.
	room := MaxLine - 1 - len(cutNote(len(line)+alreadyCut))
	if len(line) <= room {
		return line + cutNote(alreadyCut)
	}
	room -= len(sep)
	tail := min(TailKeep, room/2)
	head := room - tail
	for head > 0 && !utf8.RuneStart(line[head]) {
		head--
	}
	start := len(line) - tail
	for start < len(line) && !utf8.RuneStart(line[start]) {
		start++
	}
	return line[:head] + sep + line[start:] + cutNote(start-head+alreadyCut)
}

func cutNote(n int) string { return fmt.Sprintf(" [%d bytes cut]", n) }

// ReadLine reads one line from r keeping at most MaxLine+TailKeep bytes of
// it in memory: its beginning and its last TailKeep bytes; cut counts the
// bytes dropped between them (pass both to Bound). line keeps its newline
// when it had one; err is the reader's (io.EOF at the end).
func ReadLine(r *bufio.Reader) (line string, cut int, err error) {
	var head, tail []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if room := MaxLine - len(head); room > 0 {
			n := min(room, len(chunk))
			head = append(head, chunk[:n]...)
			chunk = chunk[n:]
		}
		tail = append(tail, chunk...)
		if len(tail) > 4*TailKeep {
			cut += len(tail) - (TailKeep + 1)
			tail = append(tail[:0], tail[len(tail)-(TailKeep+1):]...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		nl := len(tail) > 0 && tail[len(tail)-1] == '\n'
		if nl {
			tail = tail[:len(tail)-1]
		}
		if len(tail) > TailKeep {
			cut += len(tail) - TailKeep
			tail = tail[len(tail)-TailKeep:]
		}
		if nl {
			tail = append(tail, '\n')
		}
		return string(head) + string(tail), cut, err
	}
}

// FormatLine formats one wrapper log line. Newlines inside a message are
// folded so that one event is one journal entry; the line is bounded.
func FormatLine(prio int, msg string) string {
	msg = strings.TrimRight(msg, "\n")
	msg = strings.ReplaceAll(msg, "\n", " | ")
	prefix := fmt.Sprintf("<%d>haproxy-systemd-wrapper: ", prio)
	return prefix + Bound(prefix+msg, 0)[len(prefix):] + "\n"
}

// HAProxyLine gives a line of haproxy's own output the priority of its tag
// ([ALERT], [WARNING], [NOTICE]), so that journald files it right, and
// bounds it; cut counts bytes of the line already dropped (ReadLine).
func HAProxyLine(line string, cut int) string {
	line = strings.TrimSuffix(line, "\n")
	for _, t := range []struct {
		tag  string
		prio int
	}{{"[ALERT]", Err}, {"[WARNING]", Warning}, {"[NOTICE]", Notice}} {
		if strings.HasPrefix(line, t.tag) {
			prefix := fmt.Sprintf("<%d>", t.prio)
			return prefix + Bound(prefix+line, cut)[len(prefix):] + "\n"
		}
	}
	return Bound(line, cut) + "\n"
}

// QueueLines is how many lines may wait for a slow writer before new ones
// are dropped.
const QueueLines = 4096

// Logger writes whole lines through a bounded queue.
type Logger struct {
	mu      sync.Mutex
	level   int
	queue   chan string
	dropped int64 // lines dropped since the last report
	total   int64 // lines dropped in all
	idle    *sync.Cond
	pending int // lines queued or being written
}

// New returns a logger writing to w from its own goroutine.
func New(w io.Writer, level int) *Logger {
	l := &Logger{level: level, queue: make(chan string, QueueLines)}
	l.idle = sync.NewCond(&l.mu)
	go l.drain(w)
	return l
}

func (l *Logger) drain(w io.Writer) {
	for line := range l.queue {
		_, _ = io.WriteString(w, line)
		l.mu.Lock()
		l.pending--
		var note string
		if l.dropped > 0 && len(l.queue) < QueueLines/2 {
			note = FormatLine(Warning, fmt.Sprintf("stderr did not drain: %d log lines dropped", l.dropped))
			l.dropped = 0
		}
		if l.pending == 0 {
			l.idle.Broadcast()
		}
		l.mu.Unlock()
		if note != "" {
			_, _ = io.WriteString(w, note)
		}
	}
}

// SetLevel sets the most verbose priority written.
func (l *Logger) SetLevel(level int) {
	l.mu.Lock()
	l.level = level
	l.mu.Unlock()
}

// Dropped is the number of lines dropped since start.
func (l *Logger) Dropped() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// put queues a line, or drops it when the queue is full.
func (l *Logger) put(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.queue <- line:
		l.pending++
	default:
		l.dropped++
		l.total++
	}
}

func (l *Logger) logf(prio int, format string, args ...any) {
	l.mu.Lock()
	skip := prio > l.level
	l.mu.Unlock()
	if skip {
		return
	}
	l.put(FormatLine(prio, fmt.Sprintf(format, args...)))
}

// Raw queues a line of haproxy's output, with the priority of its tag; cut
// counts bytes of it already dropped (ReadLine).
func (l *Logger) Raw(line string, cut int) { l.put(HAProxyLine(line, cut)) }

// Flush waits until every queued line is written, at most d. It reports
// whether the queue drained.
func (l *Logger) Flush(d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		l.mu.Lock()
		for l.pending > 0 {
			l.idle.Wait()
		}
		l.mu.Unlock()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		// The waiter goroutine ends with the process: the writer is stuck.
		return false
	}
}

func (l *Logger) Errorf(f string, a ...any)   { l.logf(Err, f, a...) }
func (l *Logger) Warningf(f string, a ...any) { l.logf(Warning, f, a...) }
func (l *Logger) Noticef(f string, a ...any)  { l.logf(Notice, f, a...) }
func (l *Logger) Infof(f string, a ...any)    { l.logf(Info, f, a...) }
func (l *Logger) Debugf(f string, a ...any)   { l.logf(Debug, f, a...) }

// L is the process's logger, on stderr.
var L = New(os.Stderr, Info)

func Errorf(f string, a ...any)   { L.Errorf(f, a...) }
func Warningf(f string, a ...any) { L.Warningf(f, a...) }
func Noticef(f string, a ...any)  { L.Noticef(f, a...) }
func Infof(f string, a ...any)    { L.Infof(f, a...) }
func Debugf(f string, a ...any)   { L.Debugf(f, a...) }
