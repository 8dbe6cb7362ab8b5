package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// statusReport is what "haproxy-systemd-wrapper status" prints; its JSON
// field names are stable (documented in the README).
type statusReport struct {
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
	Generations      []genReport    `json:"generations"`
	Reloads          int            `json:"reloads"`
	ReloadInProgress bool           `json:"reload_in_progress"`
	ReloadPending    bool           `json:"reload_pending"`
	LastReload       *reloadRecord  `json:"last_reload,omitempty"`
	History          []reloadRecord `json:"reload_history"`
	StatsError       string         `json:"stats_error,omitempty"`
	UptimeSec        int64          `json:"uptime_sec"`
	Stopping         bool           `json:"stopping"`

	statsSocket string
}

type genReport struct {
	Gen       int    `json:"generation"`
	PID       int    `json:"pid"`
	State     string `json:"state"` // starting, serving, draining
	CurrConns int64  `json:"current_connections"`
	sock      string
}

// report snapshots the state; the stats sockets are read later by fill,
// outside the supervisor loop.
func (s *supervisor) report() statusReport {
	r := statusReport{
		WrapperVersion: version, WrapperPID: os.Getpid(), HAProxyVersion: s.st.HAProxyVersion,
		Mode: s.st.Mode.String(), Reloads: s.st.Reloads, ReloadInProgress: s.busy(), ReloadPending: s.st.Pending,
		History: append([]reloadRecord(nil), s.st.History...), CurrConns: -1, ConnRate: -1,
		statsSocket: s.set.StatsSocket, Stopping: s.stopping,
	}
	if !s.st.StartedAt.IsZero() {
		r.UptimeSec = int64(time.Since(s.st.StartedAt).Seconds())
	}
	if n := len(r.History); n > 0 {
		last := r.History[n-1]
		r.LastReload = &last
	}
	for _, g := range s.st.Gens {
		state := "draining"
		switch {
		case !g.Ready:
			state = "starting"
		case !g.Draining:
			state = "serving"
			r.Serving, r.PID, r.Generation = true, g.Pid, g.Gen
		}
		if g.Draining {
			r.Draining++
		}
		r.Generations = append(r.Generations, genReport{Gen: g.Gen, PID: g.Pid, State: state, CurrConns: -1, sock: g.ReadySock})
	}
	return r
}

// fill reads each generation's figures from its readiness socket (or, for
// haproxy <= 1.7, the serving one's from HAPROXY_STATS_SOCKET), each query
// bounded to one second.
func (r *statusReport) fill() {
	var errs []string
	for i := range r.Generations {
		g := &r.Generations[i]
		if g.State == "draining" {
			// A soft-stopping haproxy closes its stats sockets: count its
			// established TCP connections instead.
			g.CurrConns = establishedConns(g.PID)
			if g.CurrConns > 0 {
				r.DrainingConns += g.CurrConns
			}
			continue
		}
		sock := g.sock
		if sock == "" && g.State == "serving" {
			sock = r.statsSocket
		}
		if sock == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := showInfo(ctx, sock)
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

// line is the one-line summary used for STATUS=.
func (r statusReport) line() string {
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

// text is the report for a person.
func (r statusReport) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", r.line())
	fmt.Fprintf(&b, "wrapper %s pid %d, mode %s, up %ds, %d reloads\n", r.WrapperVersion, r.WrapperPID, r.Mode, r.UptimeSec, r.Reloads)
	for _, g := range r.Generations {
		conns := "?"
		if g.CurrConns >= 0 {
			conns = fmt.Sprint(g.CurrConns)
		}
		fmt.Fprintf(&b, "  generation %d pid %d %s, %s conns\n", g.Gen, g.PID, g.State, conns)
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
