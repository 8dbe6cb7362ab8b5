// Package status is the wrapper's status report: what "status" prints, what
// STATUS= says, and the health check the watchdog runs. The supervisor fills
// the state part from its loop (a copy); Fill then reads haproxy's figures
// outside the loop.
package status

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/haproxy"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// Report is what "haproxy-systemd-wrapper status" prints; its JSON
// field names are stable (documented in the README).
type Report struct {
	WrapperVersion   string         `json:"wrapper_version"`
	WrapperPID       int            `json:"wrapper_pid"`
	HAProxyVersion   string         `json:"haproxy_version"`
	Mode             string         `json:"mode"`
	Serving          bool           `json:"serving"`
	PID              int            `json:"pid"`
	Generation       int            `json:"generation"`
	CurrConns        int64          `json:"current_connections"`
	ConnRate         int64          `json:"connection_rate"`
	Draining         int            `json:"draining_generations"`
	DrainingConns    int64          `json:"draining_connections"`
	Generations      []GenReport    `json:"generations"`
	Reloads          int            `json:"reloads"`
	ReloadsFailed    int            `json:"reloads_failed"`
	ReloadInProgress bool           `json:"reload_in_progress"`
	ReloadPending    bool           `json:"reload_pending"`
	LastReload       *ReloadRecord  `json:"last_reload,omitempty"`
	History          []ReloadRecord `json:"reload_history"`
	StatsError       string         `json:"stats_error,omitempty"`
	UptimeSec        int64          `json:"uptime_sec"`
	Stopping         bool           `json:"stopping"`
	DrainRetired     int            `json:"drain_retired"`
	LogLinesDropped  int64          `json:"log_lines_dropped"`
	Respawns         int            `json:"respawns"`     // crashed generations replaced from the held sockets
	HeldSockets      int            `json:"held_sockets"` // listening sockets the wrapper holds

	StatsSocket string `json:"-"` // HAPROXY_STATS_SOCKET, read for haproxy <= 1.7
}

// ReloadRecord is one reload's outcome, kept for status and history.
type ReloadRecord struct {
	At       time.Time     `json:"at"`
	Duration time.Duration `json:"duration_ns"`
	OK       bool          `json:"ok"`
	Error    string        `json:"error,omitempty"`
	Gen      int           `json:"gen,omitempty"`
	Trigger  string        `json:"trigger"`
}

type GenReport struct {
	Gen       int    `json:"generation"`
	PID       int    `json:"pid"`
	State     string `json:"state"` // starting, serving, draining
	CurrConns int64  `json:"current_connections"`
	Workers   []int  `json:"workers,omitempty"` // haproxy <= 1.7: the processes that serve (its pid file), pid being the -Ds parent
	Sock      string `json:"-"`                 // its readiness stats socket
}

// Fill reads each generation's figures from its readiness socket (or, for
// haproxy <= 1.7, the serving one's from HAPROXY_STATS_SOCKET), each query
// bounded to one second.
func (r *Report) Fill() {
	var errs []string
	var established map[uint64]bool
	asked := false
	for i := range r.Generations {
		g := &r.Generations[i]
		if g.State == "draining" {
			// A soft-stopping haproxy closes its stats sockets: count its
			// established TCP connections instead.
			if !asked {
				established, _ = proc.TCPInodes(1 << proc.TCPEstablished) // nil on error: /proc instead
				asked = true
			}
			if proc.SameNetNS(g.PID) {
				g.CurrConns = EstablishedConns(g.PID, established)
			} else {
				g.CurrConns = EstablishedConns(g.PID, nil) // sock_diag sees only the wrapper's namespace
			}
			if g.CurrConns > 0 {
				r.DrainingConns += g.CurrConns
			}
			continue
		}
		sock := g.Sock
		if sock == "" && g.State == "serving" {
			sock = r.StatsSocket
		}
		if sock == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := haproxy.ShowInfo(ctx, sock)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Sprintf("gen %d: %v", g.Gen, err))
			continue
		}
		g.CurrConns = info.CurrConns
		if g.State == "serving" {
			r.CurrConns, r.ConnRate = info.CurrConns, info.ConnRate
		}
	}
	r.StatsError = strings.Join(errs, "; ")
}

// Line is the one-line summary used for STATUS=.
func (r Report) Line() string {
	if !r.Serving {
		return "haproxy " + r.HAProxyVersion + " not serving"
	}
	b := fmt.Sprintf("haproxy %s pid %d gen %d", r.HAProxyVersion, r.PID, r.Generation)
	if r.CurrConns >= 0 {
		b += fmt.Sprintf(" · %d conns (%d/s)", r.CurrConns, r.ConnRate)
	} else if r.StatsError != "" {
		b += " · stats unavailable"
	}
	if r.Draining > 0 {
		b += fmt.Sprintf(" · %d old gen draining (%d conns)", r.Draining, r.DrainingConns)
	}
	if r.ReloadInProgress {
		b += " · reloading"
	}
	if r.LastReload != nil {
		ago := time.Since(r.LastReload.At).Round(time.Second)
		if r.LastReload.OK {
			b += fmt.Sprintf(" · reloaded %s ago: ok", ago)
		} else {
			b += fmt.Sprintf(" · reload %s ago FAILED: %s", ago, r.LastReload.Error)
		}
	}
	return b
}

// Text is the report for a person.
func (r Report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", r.Line())
	fmt.Fprintf(&b, "wrapper %s pid %d, mode %s, up %ds, %d reloads, %d respawns, %d listening sockets held\n", r.WrapperVersion, r.WrapperPID, r.Mode, r.UptimeSec, r.Reloads, r.Respawns, r.HeldSockets)
	for _, g := range r.Generations {
		conns := "?"
		if g.CurrConns >= 0 {
			conns = fmt.Sprint(g.CurrConns)
		}
		workers := ""
		if len(g.Workers) > 0 {
			ws := make([]string, len(g.Workers))
			for i, w := range g.Workers {
				ws[i] = strconv.Itoa(w)
			}
			workers = " (workers " + strings.Join(ws, ",") + ")"
		}
		fmt.Fprintf(&b, "  generation %d pid %d%s %s, %s conns\n", g.Gen, g.PID, workers, g.State, conns)
	}
	if r.StatsError != "" {
		fmt.Fprintf(&b, "stats: %s\n", r.StatsError)
	}
	for _, h := range r.History {
		res := "ok"
		if !h.OK {
			res = "FAILED: " + h.Error
		}
		fmt.Fprintf(&b, "  reload %s (%s) took %s: %s\n", h.At.Format(time.RFC3339), h.Trigger, h.Duration.Round(time.Millisecond), res)
	}
	return b.String()
}
