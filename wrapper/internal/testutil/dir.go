package testutil

import (
	"os"
	"testing"
)

// ShortDir is a temporary folder with a short path under /tmp, removed at
// the end of the test: a unix socket's path is limited to 107 bytes, and
// t.TempDir's can be longer.
func ShortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("/tmp", "hsw-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
