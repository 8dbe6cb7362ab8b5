package haproxy

import "testing"

func TestBoundPath(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"/run/x/gen-1.sock.1234.tmp", "/run/x/gen-1.sock"},
		{"/run/x/gen-1.sock", "/run/x/gen-1.sock"},
		{"/run/x/a.tmp", "/run/x/a.tmp"},
		{"/run/x/a.b.tmp", "/run/x/a.b.tmp"},
	} {
		if got := boundPath(tt.in); got != tt.want {
			t.Errorf("boundPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
