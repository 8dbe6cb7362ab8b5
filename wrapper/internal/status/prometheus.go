package status

import (
	"fmt"
	"strconv"
	"strings"
)

// Prometheus renders the report in Prometheus' text exposition format
// (version 0.0.4): what "status --prometheus" prints and what the metrics
// file holds. Every metric is named haproxy_wrapper_*; figures haproxy did
// not give (its stats socket did not answer) are left out, never made up.
func Prometheus(r *Report) string {
	var b strings.Builder
	metric := func(name, typ, help string, samples ...string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, s := range samples {
			b.WriteString(s)
			b.WriteByte('\n')
		}
	}
	num := func(name string, v float64) string {
		return name + " " + strconv.FormatFloat(v, 'f', -1, 64)
	}
	bool01 := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	metric("haproxy_wrapper_up", "gauge", "Whether the wrapper answered (1) or not (0).", num("haproxy_wrapper_up", 1))
	metric("haproxy_wrapper_info", "gauge", "The wrapper's and haproxy's versions and haproxy's start mode, as labels (value 1).",
		fmt.Sprintf(`haproxy_wrapper_info{wrapper_version="%s",haproxy_version="%s",mode="%s"} 1`,
			labelValue(r.WrapperVersion), labelValue(r.HAProxyVersion), labelValue(r.Mode)))
	metric("haproxy_wrapper_serving", "gauge", "Whether a haproxy generation serves (1) or not (0).", num("haproxy_wrapper_serving", bool01(r.Serving)))
	metric("haproxy_wrapper_reloads_total", "counter", "Reloads settled since the wrapper started, by result.",
		fmt.Sprintf(`haproxy_wrapper_reloads_total{result="ok"} %d`, r.Reloads-r.ReloadsFailed),
		fmt.Sprintf(`haproxy_wrapper_reloads_total{result="failed"} %d`, r.ReloadsFailed))
	metric("haproxy_wrapper_reload_in_progress", "gauge", "Whether a reload is under way (1) or not (0).", num("haproxy_wrapper_reload_in_progress", bool01(r.ReloadInProgress)))
	if l := r.LastReload; l != nil {
		metric("haproxy_wrapper_last_reload_success", "gauge", "Whether the last settled reload succeeded (1) or failed (0).",
			num("haproxy_wrapper_last_reload_success", bool01(l.OK)))
		metric("haproxy_wrapper_last_reload_duration_seconds", "gauge", "How long the last settled reload took, from its request to its outcome.",
			num("haproxy_wrapper_last_reload_duration_seconds", l.Duration.Seconds()))
		metric("haproxy_wrapper_last_reload_timestamp_seconds", "gauge", "When the last settled reload was requested, in seconds since the epoch.",
			num("haproxy_wrapper_last_reload_timestamp_seconds", float64(l.At.UnixMilli())/1000))
	}
	counts := map[string]int{"starting": 0, "serving": 0, "draining": 0}
	for _, g := range r.Generations {
		counts[g.State]++
	}
	metric("haproxy_wrapper_generations", "gauge", "haproxy generations (process trees) by state.",
		fmt.Sprintf(`haproxy_wrapper_generations{state="starting"} %d`, counts["starting"]),
		fmt.Sprintf(`haproxy_wrapper_generations{state="serving"} %d`, counts["serving"]),
		fmt.Sprintf(`haproxy_wrapper_generations{state="draining"} %d`, counts["draining"]))
	if r.Serving && r.CurrConns >= 0 {
		metric("haproxy_wrapper_current_connections", "gauge", "Current connections of the serving generation (haproxy's CurrConns).",
			num("haproxy_wrapper_current_connections", float64(r.CurrConns)))
	}
	if r.Draining > 0 && r.DrainingConns >= 0 {
		metric("haproxy_wrapper_draining_connections", "gauge", "Established TCP connections still held by draining generations.",
			num("haproxy_wrapper_draining_connections", float64(r.DrainingConns)))
	}
	metric("haproxy_wrapper_drain_retired_total", "counter", "Draining generations ended by the drain limits (HAPROXY_WRAPPER_MAX_DRAINING, HAPROXY_WRAPPER_MAX_DRAIN_AGE).",
		num("haproxy_wrapper_drain_retired_total", float64(r.DrainRetired)))
	metric("haproxy_wrapper_respawns_total", "counter", "Serving generations that died on their own and were replaced from the held listening sockets (HAPROXY_WRAPPER_RESPAWN_LIMIT).",
		num("haproxy_wrapper_respawns_total", float64(r.Respawns)))
	metric("haproxy_wrapper_held_sockets", "gauge", "Listening sockets the wrapper holds and hands to each new haproxy generation.",
		num("haproxy_wrapper_held_sockets", float64(r.HeldSockets)))
	metric("haproxy_wrapper_log_lines_dropped_total", "counter", "Log lines dropped because stderr did not drain.",
		num("haproxy_wrapper_log_lines_dropped_total", float64(r.LogLinesDropped)))
	metric("haproxy_wrapper_uptime_seconds", "gauge", "Seconds since the first haproxy generation served.",
		num("haproxy_wrapper_uptime_seconds", float64(r.UptimeSec)))
	return b.String()
}

// PrometheusDown is what "status --prometheus" prints when no wrapper
// answers.
func PrometheusDown() string {
	return "# HELP haproxy_wrapper_up Whether the wrapper answered (1) or not (0).\n# TYPE haproxy_wrapper_up gauge\nhaproxy_wrapper_up 0\n"
}

// labelValue escapes a label value (backslash, double quote, newline).
func labelValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
