package main

import "strings"

// Variables that belong to the wrapper and systemd and must never reach
// haproxy: a haproxy -Ws child that saw NOTIFY_SOCKET would speak to systemd
// in the wrapper's place.
var privateEnv = []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID",
	reexecEnv, stateEnv, daemonEnv, wrapperFDEnv}

const (
	reexecEnv    = "HAPROXY_SYSTEMD_REEXEC"        // legacy marker: this image was re-executed
	stateEnv     = "HAPROXY_SYSTEMD_WRAPPER_STATE" // the supervisor's state across a re-exec
	daemonEnv    = "HAPROXY_SYSTEMD_WRAPPER_DAEMON_FD"
	wrapperFDEnv = "HAPROXY_WRAPPER_FD" // legacy readiness pipe for haproxy <= 1.7
)

// setEnv returns env with key set to value, replacing every earlier entry of
// key (execve keeps duplicates and the child reads the first).
func setEnv(env []string, key, value string) []string {
	out := unsetEnv(env, key)
	return append(out, key+"="+value)
}

// unsetEnv returns env without any entry for the keys.
func unsetEnv(env []string, keys ...string) []string {
	out := make([]string, 0, len(env))
next:
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		for _, key := range keys {
			if k == key {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// childEnv is haproxy's environment: the wrapper's, less the private variables.
func childEnv(env []string) []string { return unsetEnv(env, privateEnv...) }
