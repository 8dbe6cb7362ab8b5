package systemdtest

// Other Debian releases: HSW_SUITE=trixie or sid boots that release's own
// systemd (257, 262) from a minimal root, with its own haproxy (3.0, 3.2),
// and runs the same tests there (make matrix). Roots are built with
// mmdebstrap from the Debian mirror the machine's apt sources already name,
// and cached outside the repository (HSW_ROOTS_DIR, default
// /var/cache/hsw-roots) for rootMaxAge.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// bootRoot is the root Boot chroots into ("" boots the host's systemd).
var bootRoot string

// rootMaxAge is how long a cached root is used before it is rebuilt.
const rootMaxAge = 7 * 24 * time.Hour

// suiteRoot returns the cached root of a Debian suite, building it when it
// is missing or old.
func suiteRoot(suite string) (string, error) {
	switch suite {
	case "bookworm", "trixie", "sid":
	default:
		return "", fmt.Errorf("HSW_SUITE=%q: want bookworm, trixie or sid", suite)
	}
	dir := os.Getenv("HSW_ROOTS_DIR")
	if dir == "" {
		dir = "/var/cache/hsw-roots"
	}
	root := filepath.Join(dir, suite)
	stamp := root + ".stamp"
	if fi, err := os.Stat(stamp); err == nil && time.Since(fi.ModTime()) < rootMaxAge {
		if _, err := os.Stat(filepath.Join(root, "usr/lib/systemd/systemd")); err == nil {
			return root, nil
		}
	}
	mirror, err := aptMirror()
	if err != nil {
		return "", err
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return "", fmt.Errorf("mmdebstrap not found: make deps installs it")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := root + ".new"
	os.RemoveAll(tmp)
	cmd := exec.Command("mmdebstrap", "--quiet", "--variant=minbase", "--include=systemd,haproxy,procps",
		`--aptopt=Acquire::Check-Valid-Until "false"`, suite, tmp, fmt.Sprintf("deb %s %s main", mirror, suite))
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("mmdebstrap %s from %s: %v\n%s", suite, mirror, err, out)
	}
	os.RemoveAll(root)
	if err := os.Rename(tmp, root); err != nil {
		return "", err
	}
	return root, os.WriteFile(stamp, []byte(mirror+"\n"), 0o644)
}

// aptMirror is the Debian mirror the machine's apt sources name for its own
// release (not the security archive), from /etc/apt/sources.list and
// /etc/apt/sources.list.d/*.list and *.sources.
func aptMirror() (string, error) {
	files := []string{"/etc/apt/sources.list"}
	for _, pat := range []string{"/etc/apt/sources.list.d/*.sources", "/etc/apt/sources.list.d/*.list"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if strings.HasSuffix(f, ".sources") {
			// deb822 stanzas: URIs and Suites of each.
			for _, stanza := range strings.Split(string(b), "\n\n") {
				var uri, suites, types string
				sc := bufio.NewScanner(strings.NewReader(stanza))
				for sc.Scan() {
					k, v, ok := strings.Cut(sc.Text(), ":")
					if !ok || strings.HasPrefix(k, "#") {
						continue
					}
					switch strings.TrimSpace(k) {
					case "URIs":
						uri = strings.Fields(v)[0]
					case "Suites":
						suites = v
					case "Types":
						types = v
					}
				}
				if uri != "" && strings.Contains(types, "deb") && !strings.Contains(suites, "security") && strings.Contains(uri, "debian") {
					return strings.TrimSuffix(uri, "/"), nil
				}
			}
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 3 && f[0] == "deb" && !strings.Contains(l, "security") && strings.Contains(f[1], "debian") {
				return strings.TrimSuffix(f[1], "/"), nil
			}
		}
	}
	return "", fmt.Errorf("no Debian mirror in the apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d)")
}
