package proc

import "testing"

func TestParseStat(t *testing.T) {
	tests := []struct {
		line  string
		state string
		ppid  int
	}{
		{"123 (haproxy) S 77 123 123 0 -1", "S", 77},
		{"123 (ha proxy) (x) Z 1 2", "Z", 1},
		{"123 (a) b) R 9 1", "R", 9},
		{"garbage", "", 0},
		{"123 (x)", "", 0},
	}
	for _, tt := range tests {
		state, ppid := ParseStat(tt.line)
		if state != tt.state || ppid != tt.ppid {
			t.Errorf("ParseStat(%q) = %q %d, want %q %d", tt.line, state, ppid, tt.state, tt.ppid)
		}
	}
}
