package testutil

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// promParser is Debian's python3-prometheus-client text parser: it prints
// every sample as {"name{label=\"v\",...}": value}, labels sorted, and fails
// on anything the format does not allow.
const promParser = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join('%s="%s"' % (k, s.labels[k]) for k in sorted(s.labels))
        out[s.name + ("{" + labels + "}" if labels else "")] = s.value
print(json.dumps(out))
`

// ParsePrometheus parses text with a real Prometheus parser (Debian's
// python3-prometheus-client, run by /usr/bin/python3) and returns its
// samples. Without the parser the test is skipped, or fails in CI (make deps
// installs it).
func ParsePrometheus(t *testing.T, text string) map[string]float64 {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import prometheus_client").Run(); err != nil {
		Unavailable(t, "no Prometheus parser: %s cannot import prometheus_client (%v): make deps installs python3-prometheus-client", py, err)
	}
	cmd := exec.Command(py, "-c", promParser)
	cmd.Stdin = strings.NewReader(text)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the Prometheus parser refused the text: %v\n%s\ntext:\n%s", err, stderr.String(), text)
	}
	var m map[string]float64
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("parser output %q: %v", out, err)
	}
	return m
}
