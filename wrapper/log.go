package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// sd-daemon priorities (sd-daemon.h): journald turns the "<N>" prefix of a
// stderr line into the entry's priority.
const (
	prioErr     = 3
	prioWarning = 4
	prioNotice  = 5
	prioInfo    = 6
	prioDebug   = 7
)

func parseLevel(s string) (int, bool) {
	switch strings.ToLower(s) {
	case "err", "error":
		return prioErr, true
	case "warning", "warn":
		return prioWarning, true
	case "notice":
		return prioNotice, true
	case "info":
		return prioInfo, true
	case "debug":
		return prioDebug, true
	}
	return 0, false
}

// logger writes one line per event to stderr: "<N>haproxy-systemd-wrapper: msg",
// no timestamp (journald adds one). Newlines inside a message are folded so
// that one event is one journal entry.
type logger struct {
	mu    sync.Mutex
	w     io.Writer
	level int
}

var log = &logger{w: os.Stderr, level: prioInfo}

func formatLogLine(prio int, msg string) string {
	msg = strings.TrimRight(msg, "\n")
	msg = strings.ReplaceAll(msg, "\n", " | ")
	return fmt.Sprintf("<%d>haproxy-systemd-wrapper: %s\n", prio, msg)
}

func (l *logger) logf(prio int, format string, args ...any) {
	if prio > l.level {
		return
	}
	line := formatLogLine(prio, fmt.Sprintf(format, args...))
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, line)
}

func (l *logger) Errorf(f string, a ...any)   { l.logf(prioErr, f, a...) }
func (l *logger) Warningf(f string, a ...any) { l.logf(prioWarning, f, a...) }
func (l *logger) Noticef(f string, a ...any)  { l.logf(prioNotice, f, a...) }
func (l *logger) Infof(f string, a ...any)    { l.logf(prioInfo, f, a...) }
func (l *logger) Debugf(f string, a ...any)   { l.logf(prioDebug, f, a...) }

// haproxyLine gives a line of haproxy's output the sd-daemon priority of its
// own tag ([ALERT], [WARNING], [NOTICE]), so journald files it right.
func haproxyLine(line string) string {
	if !strings.HasSuffix(line, "\n") {
		line += "\n"
	}
	for tag, prio := range map[string]int{"[ALERT]": prioErr, "[WARNING]": prioWarning, "[NOTICE]": prioNotice} {
		if strings.HasPrefix(line, tag) {
			return fmt.Sprintf("<%d>%s", prio, line)
		}
	}
	return line
}

// raw writes a line of haproxy's output between whole log lines.
func (l *logger) raw(line string) {
	line = haproxyLine(line)
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, line)
}
