package haproxy

import (
	"os"
	"path/filepath"
	"strings"
)

// Locate finds the haproxy binary the legacy C wrapper's way: override
// ($HAPROXY_BIN) when set, else "haproxy" next to the wrapper at self (a
// wrapper named X-systemd-wrapper runs X), else /usr/sbin/haproxy.
func Locate(override, self string) string {
	if override != "" {
		return override
	}
	dir, base := filepath.Dir(self), filepath.Base(self)
	name := "haproxy"
	if strings.HasSuffix(base, "-systemd-wrapper") && base != "haproxy-systemd-wrapper" {
		name = strings.TrimSuffix(base, "-systemd-wrapper")
	}
	cand := filepath.Join(dir, name)
	if fi, err := os.Stat(cand); err == nil && !fi.IsDir() {
		return cand
	}
	return "/usr/sbin/haproxy"
}
