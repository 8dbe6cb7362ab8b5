package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// statsDefaultTimeout bounds a stats socket exchange when the caller's
// context carries no deadline of its own.
const statsDefaultTimeout = 5 * time.Second

// statsMaxAnswer caps how much of an answer QueryStats will buffer. "show
// info" is about 1 KiB; the cap only guards against a runaway peer.
const statsMaxAnswer = 16 << 20

// QueryStats sends one command to HAProxy's stats/CLI unix socket at path
// and returns the whole answer. HAProxy's CLI is non-interactive by default:
// it answers a single command line and then closes the connection, so the
// answer is everything read until EOF.
//
// The exchange (dial, write, read) is bounded by ctx's deadline, or by
// statsDefaultTimeout when ctx has none. Cancelling ctx aborts it too. All
// errors are wrapped as "stats socket <path>: ..."; timeouts satisfy both
// errors.Is(err, context.DeadlineExceeded) and
// errors.Is(err, os.ErrDeadlineExceeded).
func QueryStats(ctx context.Context, path, cmd string) (string, error) {
	if strings.ContainsAny(cmd, "\r\n") {
		return "", fmt.Errorf("stats socket %s: command %q contains a line break", path, cmd)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, statsDefaultTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return "", statsWrapErr(ctx, path, err)
	}
	defer conn.Close()

	if err := conn.SetDeadline(deadline); err != nil {
		return "", statsWrapErr(ctx, path, err)
	}
	// Cancellation (as opposed to the deadline) must also unblock I/O:
	// pull the deadline into the past when ctx is done.
	stop := context.AfterFunc(ctx, func() {
		_ = conn.SetDeadline(time.Unix(1, 0))
	})
	defer stop()

	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", statsWrapErr(ctx, path, err)
	}
	data, err := io.ReadAll(io.LimitReader(conn, statsMaxAnswer+1))
	if err != nil {
		return "", statsWrapErr(ctx, path, err)
	}
	if len(data) > statsMaxAnswer {
		return "", fmt.Errorf("stats socket %s: answer to %q exceeds %d bytes", path, cmd, statsMaxAnswer)
	}
	return string(data), nil
}

// statsWrapErr wraps an I/O error from the socket with the path and, when
// the context is done, with the context's error as well, so callers can
// test for context.DeadlineExceeded / context.Canceled as well as the
// underlying net error.
func statsWrapErr(ctx context.Context, path string, err error) error {
	cerr := ctx.Err()
	if cerr == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// The connection deadline is ctx's deadline; its timer may fire
		// a moment before ctx's own.
		cerr = context.DeadlineExceeded
	}
	if cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("stats socket %s: %w: %w", path, cerr, err)
	}
	return fmt.Errorf("stats socket %s: %w", path, err)
}

// Info is the part of HAProxy's "show info" answer that a status line
// needs. Fields missing from the answer (older or newer HAProxy versions)
// are left at their zero value; Raw holds every field as received, so
// callers can tell "absent" from "zero" and reach anything not lifted
// into a typed field.
type Info struct {
	Name        string        // "Name", normally "HAProxy"
	Version     string        // "Version", e.g. "2.6.12-1+deb12u4"
	ReleaseDate string        // "Release_date"
	Node        string        // "node" (the hostname unless configured)
	Pid         int           // "Pid"
	Uptime      time.Duration // "Uptime_sec" (or parsed from "Uptime")
	Nbthread    int           // "Nbthread" (absent before HAProxy 1.8)
	Nbproc      int           // "Nbproc" (removed after 2.x; 1 when present)
	MaxConn     int64         // "Maxconn"
	CurrConns   int64         // "CurrConns"
	CumConns    int64         // "CumConns" (includes CLI connections)
	CumReq      int64         // "CumReq"
	ConnRate    int64         // "ConnRate" (connections over the last second)
	Jobs        int64         // "Jobs" (what a soft-stopping process still waits for)
	Stopping    bool          // "Stopping" != 0 (absent before 1.9; see Raw)

	Raw map[string]string // every "Key: value" line, first occurrence wins
}

// ParseShowInfo parses the text answer of HAProxy's "show info" command:
// one "Key: value" per line. It is tolerant: unknown fields are kept only in
// Raw, CRLF line ends and blank lines are accepted, lines without ':' are
// skipped, and unparsable or missing numbers become zero. It returns an
// error only when the text holds no "Name" or "Pid" field at all, which is
// what an error answer ("Unknown command...", "Permission denied") or an
// empty answer looks like.
func ParseShowInfo(text string) (Info, error) {
	info := Info{Raw: make(map[string]string)}
	for line := range strings.Lines(text) {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key = strings.TrimSpace(key)
		if key == "" {
			continue
		}
		if _, dup := info.Raw[key]; dup {
			continue
		}
		info.Raw[key] = strings.TrimSpace(val)
	}

	_, hasName := info.Raw["Name"]
	_, hasPid := info.Raw["Pid"]
	if !hasName && !hasPid {
		return Info{}, fmt.Errorf("show info: unexpected answer %q", infoTruncate(strings.TrimSpace(text), 80))
	}

	r := info.Raw
	info.Name = r["Name"]
	info.Version = r["Version"]
	info.ReleaseDate = r["Release_date"]
	info.Node = r["node"]
	info.Pid = int(infoClampInt(infoParseInt(r["Pid"]), 0, math.MaxInt32))
	info.Nbthread = int(infoClampInt(infoParseInt(r["Nbthread"]), 0, math.MaxInt32))
	info.Nbproc = int(infoClampInt(infoParseInt(r["Nbproc"]), 0, math.MaxInt32))
	info.MaxConn = infoParseInt(r["Maxconn"])
	info.CurrConns = infoParseInt(r["CurrConns"])
	info.CumConns = infoParseInt(r["CumConns"])
	info.CumReq = infoParseInt(r["CumReq"])
	info.ConnRate = infoParseInt(r["ConnRate"])
	info.Jobs = infoParseInt(r["Jobs"])
	info.Stopping = infoParseInt(r["Stopping"]) != 0

	if s, ok := r["Uptime_sec"]; ok {
		info.Uptime = infoSeconds(infoParseInt(s))
	} else {
		info.Uptime = infoParseUptime(r["Uptime"])
	}
	return info, nil
}

// ShowInfo asks the HAProxy stats socket at path for "show info" and parses
// the answer.
func ShowInfo(ctx context.Context, path string) (Info, error) {
	text, err := QueryStats(ctx, path, "show info")
	if err != nil {
		return Info{}, err
	}
	info, err := ParseShowInfo(text)
	if err != nil {
		return Info{}, fmt.Errorf("stats socket %s: %w", path, err)
	}
	return info, nil
}

// infoParseInt parses a decimal counter. HAProxy prints some counters as
// unsigned 64-bit values, so values beyond int64 saturate at MaxInt64;
// anything unparsable is 0.
func infoParseInt(s string) int64 {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	if _, err := strconv.ParseUint(s, 10, 64); err != nil {
		var numErr *strconv.NumError
		if !errors.As(err, &numErr) || numErr.Err != strconv.ErrRange {
			return 0
		}
	}
	return math.MaxInt64
}

func infoClampInt(n, lo, hi int64) int64 {
	return max(lo, min(n, hi))
}

// infoSeconds converts seconds to a Duration, saturating instead of
// overflowing and mapping negative values to 0.
func infoSeconds(sec int64) time.Duration {
	if sec <= 0 {
		return 0
	}
	if sec > int64(math.MaxInt64/time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(sec) * time.Second
}

// infoParseUptime parses HAProxy's human "Uptime" field, "3d 4h05m06s".
// It is only a fallback for answers without "Uptime_sec".
func infoParseUptime(s string) time.Duration {
	var d, h, m, sec int64
	if n, _ := fmt.Sscanf(s, "%dd %dh%dm%ds", &d, &h, &m, &sec); n != 4 {
		return 0
	}
	if d < 0 || h < 0 || m < 0 || sec < 0 || d > 1<<20 || h > 1<<31 || m > 1<<31 || sec > 1<<31 {
		return 0
	}
	return infoSeconds(((d*24+h)*60+m)*60 + sec)
}

// infoTruncate shortens s to at most n bytes (on a rune boundary), marking
// the cut with "...".
func infoTruncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
