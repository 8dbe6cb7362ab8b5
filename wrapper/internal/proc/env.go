package proc

import "strings"

// Variables of the wrapper's own, and systemd's, that must never reach
// haproxy: a haproxy -Ws child that saw NOTIFY_SOCKET would speak to systemd
// in the wrapper's place.
const (
	EnvReexec    = "HAPROXY_SYSTEMD_REEXEC"             // legacy marker: this image was re-executed
	EnvHandoff   = "HAPROXY_SYSTEMD_WRAPPER_HANDOFF_FD" // the hand-off document's fd across a re-exec
	EnvDaemonFD  = "HAPROXY_SYSTEMD_WRAPPER_DAEMON_FD"  // -D: the pipe to the waiting parent
	EnvWrapperFD = "HAPROXY_WRAPPER_FD"                 // legacy readiness pipe for haproxy <= 1.7
	// -D: how many sockets systemd passed the parent (fd 4 on in the
	// daemon, after the pipe; their names in LISTEN_FDNAMES).
	EnvDaemonListen = "HAPROXY_SYSTEMD_WRAPPER_DAEMON_LISTEN_FDS"
)

var privateEnv = []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
	EnvReexec, EnvHandoff, EnvDaemonFD, EnvWrapperFD, EnvDaemonListen}

// SetEnv returns env with key set to value, replacing every earlier entry of
// key (execve keeps duplicates and the child reads the first).
func SetEnv(env []string, key, value string) []string {
	out := UnsetEnv(env, key)
	return append(out, key+"="+value)
}

// UnsetEnv returns env without any entry for the keys.
func UnsetEnv(env []string, keys ...string) []string {
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

// ChildEnv is haproxy's environment: the wrapper's, less the private variables.
func ChildEnv(env []string) []string { return UnsetEnv(env, privateEnv...) }
