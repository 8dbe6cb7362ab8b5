package status

import (
	"bufio"
	"strings"
	"testing"
	"time"
)

func TestCountEstablished(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:D2F2 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:1F90 0100007F:D2F4 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0000000000000000
`
	got := countEstablishedIn(bufio.NewScanner(strings.NewReader(table)), map[string]bool{"111": true, "222": true, "999": true})
	if got != 1 {
		t.Fatalf("got %d established sockets of ours, want 1", got)
	}
}

func TestStatusLine(t *testing.T) {
	at := time.Now().Add(-2 * time.Minute)
	tests := []struct {
		r    Report
		want string
	}{
		{Report{HAProxyVersion: "2.6.12"}, "haproxy 2.6.12 not serving"},
		{Report{HAProxyVersion: "2.6.12", Serving: true, PID: 4242, Generation: 7, CurrConns: 153, ConnRate: 12,
			Draining: 1, DrainingConns: 3, LastReload: &ReloadRecord{At: at, OK: true}},
			"haproxy 2.6.12 pid 4242 gen 7 · 153 conns (12/s) · 1 old gen draining (3 conns) · reloaded 2m0s ago: ok"},
		{Report{HAProxyVersion: "2.6.12", Serving: true, PID: 1, Generation: 2, CurrConns: -1, StatsError: "x",
			LastReload: &ReloadRecord{At: at, Error: "configuration check failed"}},
			"haproxy 2.6.12 pid 1 gen 2 · stats unavailable · reload 2m0s ago FAILED: configuration check failed"},
	}
	for _, tt := range tests {
		if got := tt.r.Line(); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
	}
}
