package haproxy

import "testing"

func TestBoundPath(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"/run/x/gen-1.sock.1234.tmp", "/run/x/gen-1.sock"},
		{"/run/x/gen-1.sock", "/run/x/gen-1.sock"},
		{"/run/x/a.tmp", "/run/x/a.tmp"},
		{"/run/x/a.b.tmp", "/run/x/a.b.tmp"},
		{"/run/x/a.x.tmp", "/run/x/a.x.tmp"},
		{"/run/x/a.sock..tmp", "/run/x/a.sock..tmp"}, // no pid between the dots
	} {
		if got := BoundPath(tt.in); got != tt.want {
			t.Errorf("BoundPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
