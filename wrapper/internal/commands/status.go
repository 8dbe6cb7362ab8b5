package commands

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/control"
	"haproxy-systemd-wrapper/wrapper/internal/proc"
	"haproxy-systemd-wrapper/wrapper/internal/status"
)

// exitNotRunning is status's and last-reload's exit code when no wrapper
// answers or haproxy does not serve (LSB: program is not running).
const exitNotRunning = 3

// statusCommand prints the status (format "", "--json" or "--prometheus");
// exit 0 when haproxy serves, 3 otherwise. With no wrapper named, the plain
// status lists every wrapper found, each under its name; the other formats
// need exactly one.
func statusCommand(w where, format string) int {
	if w.socket == "" && format == "" {
		return statusAll(w)
	}
	sock, code, ok := w.one("status", exitNotRunning)
	if !ok {
		if format == "--prometheus" && code == exitNotRunning {
			fmt.Print(status.PrometheusDown())
		}
		return code
	}
	return statusOne(w, sock, format)
}

// statusAll prints the status of every wrapper found, each under its name;
// exit 0 when each one's haproxy serves.
func statusAll(w where) int {
	fs, err := findAll("status", w.base)
	if err != nil {
		say("status: %v", err)
		return exitNotRunning
	}
	if len(fs) == 0 {
		say("status: no running haproxy-systemd-wrapper found under %s: name one with --unit NAME, CONFIG or HAPROXY_WRAPPER_CONTROL_SOCKET", w.base)
		return exitNotRunning
	}
	code := proc.ExitOK
	for i, f := range fs {
		if i > 0 {
			fmt.Println()
		}
		fmt.Printf("%s:\n", f.name)
		ans, err := control.RequestText(f.socket, "status", 10*time.Second)
		if err != nil {
			say("status: %s: %v", f.name, err)
			code = exitNotRunning
			continue
		}
		for _, l := range strings.SplitAfter(strings.TrimRight(ans, "\n"), "\n") {
			fmt.Print("  " + strings.TrimRight(l, "\n") + "\n")
		}
		if notServing(ans) {
			code = exitNotRunning
		}
	}
	return code
}

func notServing(ans string) bool {
	return strings.HasPrefix(ans, "error ") || strings.Contains(ans, "not serving")
}

// statusOne prints one wrapper's status in the given format.
func statusOne(w where, sock, format string) int {
	req := "status"
	if format != "" {
		req = "status json"
	}
	ans, err := control.RequestText(sock, req, 10*time.Second)
	if err != nil {
		if format == "--prometheus" {
			fmt.Print(status.PrometheusDown())
		}
		say("status: %v", w.explain(err))
		return exitNotRunning
	}
	switch format {
	case "--json":
		fmt.Print(ans)
		var r status.Report
		if json.Unmarshal([]byte(ans), &r) == nil && r.Serving {
			return proc.ExitOK
		}
		return exitNotRunning
	case "--prometheus":
		var r status.Report
		if err := json.Unmarshal([]byte(ans), &r); err != nil {
			fmt.Print(status.PrometheusDown())
			say("status: %s", strings.TrimSpace(strings.TrimPrefix(ans, "error ")))
			return exitNotRunning
		}
		fmt.Print(status.Prometheus(&r))
		if r.Serving {
			return proc.ExitOK
		}
		return exitNotRunning
	}
	fmt.Print(ans)
	if notServing(ans) {
		return exitNotRunning
	}
	return proc.ExitOK
}

// lastReloadCommand says how the last reload ended: exit 0 when it
// succeeded (or there was none), 1 with haproxy's reason when it failed, 3
// when no wrapper answers. For ExecReloadPost= of a Type=notify-reload unit:
// systemd (>= 259) then fails "systemctl reload" when the reload failed,
// which no notify message can do.
func lastReloadCommand(w where) int {
	sock, code, ok := w.one("last-reload", exitNotRunning)
	if !ok {
		return code
	}
	ans, err := control.RequestText(sock, "status json", 10*time.Second)
	if err != nil {
		say("last-reload: %v", w.explain(err))
		return exitNotRunning
	}
	var r status.Report
	if err := json.Unmarshal([]byte(ans), &r); err != nil {
		say("last-reload: %s", strings.TrimSpace(strings.TrimPrefix(ans, "error ")))
		return exitNotRunning
	}
	switch l := r.LastReload; {
	case l == nil:
		fmt.Println("no reload yet")
		return proc.ExitOK
	case l.OK:
		fmt.Printf("last reload ok: generation %d serving (%s ago)\n", r.Generation, time.Since(l.At).Round(time.Second))
		return proc.ExitOK
	default:
		say("last reload failed (%s ago): %s", time.Since(l.At).Round(time.Second), l.Error)
		return proc.ExitStartFailed
	}
}
