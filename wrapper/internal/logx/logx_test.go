package logx

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

func TestLogLineFormat(t *testing.T) {
	if got, want := FormatLine(Notice, "exit, haproxy RC=0"), "<5>haproxy-systemd-wrapper: exit, haproxy RC=0\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := FormatLine(Err, "a\nb\n"), "<3>haproxy-systemd-wrapper: a | b\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestHAProxyLinePriority(t *testing.T) {
	tests := []struct{ in, want string }{
		{"[ALERT]    (1) : config : bad\n", "<3>[ALERT]    (1) : config : bad\n"},
		{"[WARNING]  (1) : Proxy x stopped", "<4>[WARNING]  (1) : Proxy x stopped\n"},
		{"[NOTICE]   (1) : haproxy version is 2.6", "<5>[NOTICE]   (1) : haproxy version is 2.6\n"},
		{"plain\n", "plain\n"},
	}
	for _, tt := range tests {
		if got := HAProxyLine(tt.in, 0); got != tt.want {
			t.Errorf("HAProxyLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestLinesAreBounded: a wrapper line, a haproxy line and a line read from a
// pipe are at most MaxLine bytes, newline included, keep their beginning
// and priority, and end with the number of bytes cut; short lines are
// untouched.
func TestLinesAreBounded(t *testing.T) {
	// checkCut checks that got is orig bounded: at most MaxLine bytes with
	// its newline, orig's beginning, " ... ", orig's end, and the number of
	// bytes left out.
	checkCut := func(what, got, orig string) {
		t.Helper()
		if len(got) > MaxLine || strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, " bytes cut]\n") {
			t.Fatalf("%s: %d bytes (max %d), want one newline after the bytes cut: %.60q ... %q", what, len(got), MaxLine, got, got[max(0, len(got)-60):])
		}
		body := strings.TrimSuffix(got, "\n")
		i := strings.LastIndex(body, " [")
		var cut int
		if _, err := fmt.Sscanf(body[i:], " [%d bytes cut]", &cut); err != nil {
			t.Fatalf("%s: no count in %q", what, body[i:])
		}
		head, tail, ok := strings.Cut(body[:i], " ... ")
		if !ok || !strings.HasPrefix(orig, head) || !strings.HasSuffix(orig, tail) || len(tail) < TailKeep/2 || len(head)+len(tail)+cut != len(orig) {
			t.Errorf("%s: %d bytes of the beginning + %d of the end + %d cut, want %d, the end kept (%d bytes at least)", what, len(head), len(tail), cut, len(orig), TailKeep/2)
		}
	}
	long := strings.Repeat("a/", 32<<10) + "haproxy.cfg : File name too long" // a 64 KiB path, the reason at the end
	pre := "<3>haproxy-systemd-wrapper: "
	checkCut("FormatLine", FormatLine(Err, long), pre+long)

	// haproxy's alert read from a pipe, longer than the reader's buffer.
	alert := "[ALERT]    (1) : Cannot open " + long + "\nnext line\n"
	r := bufio.NewReaderSize(strings.NewReader(alert), 16)
	line, cut, err := ReadLine(r)
	if err != nil || !strings.HasSuffix(line, " too long\n") || len(line) > MaxLine+TailKeep+1 || len(line)-1+cut != len(alert)-len("\nnext line\n") {
		t.Fatalf("ReadLine: %d bytes, %d cut, %v", len(line), cut, err)
	}
	checkCut("HAProxyLine", HAProxyLine(line, cut), "<3>"+alert[:len(alert)-len("\nnext line\n")])
	if next, cut, err := ReadLine(r); next != "next line\n" || cut != 0 || err != nil {
		t.Errorf("the line after a long one: %q %d %v", next, cut, err)
	}

	// Short lines are untouched; a cut never splits a UTF-8 character.
	if got := HAProxyLine("[NOTICE] short\n", 0); got != "<5>[NOTICE] short\n" {
		t.Errorf("short: %q", got)
	}
	u := Bound(strings.Repeat("é", MaxLine), 0)
	if !utf8.ValidString(u) || len(u)+1 > MaxLine {
		t.Errorf("Bound of a UTF-8 line: valid %v, %d bytes", utf8.ValidString(u), len(u))
	}
}

// TestLoggerNeverBlocks: a writer that does not drain (an io.Pipe nobody
// reads) must not hold up the callers; the overflow is dropped and counted,
// and once the writer drains one line says how many lines were lost.
func TestLoggerNeverBlocks(t *testing.T) {
	const total = QueueLines + 100
	const bound = 10 * time.Second

	pr, pw := io.Pipe()
	defer pr.Close()
	l := New(pw, Info)

	// Log from a goroutine, so that a blocking Errorf shows as a timeout
	// with the progress made, not as a hung test.
	var logged atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < total; i++ {
			l.Errorf("line %d", i)
			logged.Add(1)
		}
	}()
	select {
	case <-done:
	case <-time.After(bound):
		t.Fatalf("Errorf blocked on a writer that does not drain: %d of %d lines logged within %s", logged.Load(), total, bound)
	}

	// The writer took at most one line (it is blocked writing it); the
	// queue holds QueueLines more; the rest was dropped.
	dropped := l.Dropped()
	if dropped < total-QueueLines-1 || dropped > total-QueueLines {
		t.Fatalf("Dropped() = %d, want %d or %d", dropped, total-QueueLines-1, total-QueueLines)
	}
	if l.Flush(50 * time.Millisecond) {
		t.Fatal("Flush() = true while the writer is blocked, want false")
	}

	// Drain the pipe: every queued line arrives, then the drop report.
	lines := make(chan string, total+10)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	wantNote := fmt.Sprintf("<%d>haproxy-systemd-wrapper: stderr did not drain: %d log lines dropped", Warning, dropped)
	var got []string
	deadline := time.After(bound)
	for found := false; !found; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("pipe closed before the drop report; got %d lines", len(got))
			}
			got = append(got, line)
			if strings.Contains(line, "log lines dropped") {
				if line != wantNote {
					t.Errorf("drop report = %q, want %q", line, wantNote)
				}
				found = true
			}
		case <-deadline:
			t.Fatalf("no \"log lines dropped\" line within %s after the writer drained; got %d lines, last %q", bound, len(got), last(got))
		}
	}
	if !l.Flush(bound) {
		t.Fatalf("Flush(%s) = false after the writer drained", bound)
	}
	// Flush returns once every line was written, and the pipe hands each
	// write to the reader before Write returns: what is left is buffered.
	pw.Close()
	for line := range lines {
		got = append(got, line)
	}

	notes, written := 0, 0
	for _, line := range got {
		switch {
		case strings.Contains(line, "log lines dropped"):
			notes++
		case strings.HasPrefix(line, "<3>haproxy-systemd-wrapper: line "):
			written++
		default:
			t.Errorf("unexpected line %q", line)
		}
	}
	if notes != 1 {
		t.Errorf("%d drop reports, want 1", notes)
	}
	if int64(written)+dropped != total {
		t.Errorf("%d lines written + %d dropped = %d, want %d", written, dropped, int64(written)+dropped, total)
	}
	if got := l.Dropped(); got != dropped {
		t.Errorf("Dropped() = %d after the drain, want %d (it counts since start)", got, dropped)
	}
	if !strings.HasSuffix(got[0], ": line 0") {
		t.Errorf("first line = %q, want line 0 (lines are kept in order)", got[0])
	}
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

func TestLoggerLevel(t *testing.T) {
	pr, pw := io.Pipe()
	defer pr.Close()
	l := New(pw, Notice)
	l.Infof("hidden")
	l.Debugf("hidden")
	l.Noticef("shown %d", 1)
	l.SetLevel(Debug)
	l.Debugf("shown %d", 2)

	lines := make(chan string, 4)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	for _, want := range []string{"<5>haproxy-systemd-wrapper: shown 1", "<7>haproxy-systemd-wrapper: shown 2"} {
		select {
		case got := <-lines:
			if got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no line %q within 10s", want)
		}
	}
	if !l.Flush(10 * time.Second) {
		t.Fatal("Flush(10s) = false")
	}
	pw.Close()
	for line := range lines {
		t.Errorf("unexpected line %q", line)
	}
}
