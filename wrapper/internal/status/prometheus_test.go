package status

import (
	"testing"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/testutil"
)

// TestPrometheusParses renders a report with every part present and reads
// it back with a real Prometheus parser.
func TestPrometheusParses(t *testing.T) {
	at := time.Unix(1764500000, 250e6)
	r := Report{
		WrapperVersion: `v1 "quoted"\`, HAProxyVersion: "2.6.12-1+deb12u4", Mode: "foreground",
		Serving: true, PID: 42, Generation: 3, CurrConns: 17, Draining: 1, DrainingConns: 5,
		Generations: []GenReport{{Gen: 2, State: "draining"}, {Gen: 3, State: "serving"}, {Gen: 4, State: "starting"}},
		Reloads:     5, ReloadsFailed: 2,
		LastReload:   &ReloadRecord{At: at, Duration: 1500 * time.Millisecond, OK: false},
		DrainRetired: 1, LogLinesDropped: 9, UptimeSec: 3600, Respawns: 2, HeldSockets: 4,
	}
	text := Prometheus(&r)
	m := testutil.ParsePrometheus(t, text)
	want := map[string]float64{
		"haproxy_wrapper_up":                             1,
		"haproxy_wrapper_serving":                        1,
		`haproxy_wrapper_reloads_total{result="ok"}`:     3,
		`haproxy_wrapper_reloads_total{result="failed"}`: 2,
		"haproxy_wrapper_last_reload_success":            0,
		"haproxy_wrapper_last_reload_duration_seconds":   1.5,
		"haproxy_wrapper_last_reload_timestamp_seconds":  1764500000.25,
		`haproxy_wrapper_generations{state="serving"}`:   1,
		`haproxy_wrapper_generations{state="draining"}`:  1,
		`haproxy_wrapper_generations{state="starting"}`:  1,
		"haproxy_wrapper_current_connections":            17,
		"haproxy_wrapper_draining_connections":           5,
		"haproxy_wrapper_drain_retired_total":            1,
		"haproxy_wrapper_log_lines_dropped_total":        9,
		"haproxy_wrapper_uptime_seconds":                 3600,
		"haproxy_wrapper_respawns_total":                 2,
		"haproxy_wrapper_held_sockets":                   4,
		"haproxy_wrapper_reload_in_progress":             0,
		// The parser unescapes label values: the quotes and backslash came
		// through.
		`haproxy_wrapper_info{haproxy_version="2.6.12-1+deb12u4",mode="foreground",wrapper_version="v1 "quoted"\"}`: 1,
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("no sample %s in:\n%s", k, text)
		} else if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	if len(m) != len(want) {
		t.Errorf("%d samples, want %d:\n%v", len(m), len(want), m)
	}

	// No figure haproxy did not give, and the "down" text parses too.
	r2 := Report{CurrConns: -1}
	if m := testutil.ParsePrometheus(t, Prometheus(&r2)); m["haproxy_wrapper_serving"] != 0 {
		t.Errorf("not serving: %v", m)
	} else if _, ok := m["haproxy_wrapper_current_connections"]; ok {
		t.Errorf("current connections reported without a serving generation: %v", m)
	}
	if m := testutil.ParsePrometheus(t, PrometheusDown()); len(m) != 1 || m["haproxy_wrapper_up"] != 0 {
		t.Errorf("down: %v", m)
	}
}
