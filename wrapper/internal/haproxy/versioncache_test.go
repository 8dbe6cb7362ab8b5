package haproxy

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestVersionCache: a binary's version is remembered by its identity; a
// changed binary misses; a file or folder someone else could write, or a
// symlink, is never read.
func TestVersionCache(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "haproxy")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "haproxy-other")
	if err := os.WriteFile(other, []byte("#!/bin/sh\necho\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache", "versions")
	if _, ok := CachedVersion(cache, bin); ok {
		t.Fatal("a hit before anything was remembered")
	}
	if err := RememberVersion(cache, bin, "2.6.12-1+deb12u4"); err != nil {
		t.Fatal(err)
	}
	if err := RememberVersion(cache, other, "3.4.0"); err != nil {
		t.Fatal(err)
	}
	if v, ok := CachedVersion(cache, bin); !ok || v != "2.6.12-1+deb12u4" {
		t.Fatalf("CachedVersion = %q %v, want 2.6.12-1+deb12u4", v, ok)
	}
	if v, ok := CachedVersion(cache, other); !ok || v != "3.4.0" {
		t.Fatalf("CachedVersion(other) = %q %v", v, ok)
	}
	if err := RememberVersion(cache, bin, "2.6.13"); err != nil {
		t.Fatal(err)
	}
	if v, _ := CachedVersion(cache, bin); v != "2.6.13" {
		t.Fatalf("after remembering again: %q, want 2.6.13 (one line per binary)", v)
	}

	// The binary changes (as an upgrade writes it): a miss.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(bin, later, later); err != nil {
		t.Fatal(err)
	}
	if v, ok := CachedVersion(cache, bin); ok {
		t.Fatalf("a changed binary hit: %q", v)
	}
	if err := RememberVersion(cache, bin, "2.8.0"); err != nil {
		t.Fatal(err)
	}

	// Writable by others: ignored, and left alone.
	if err := os.Chmod(cache, 0o666); err != nil {
		t.Fatal(err)
	}
	if v, ok := CachedVersion(cache, bin); ok {
		t.Fatalf("a world-writable cache was read: %q", v)
	}
	if err := RememberVersion(cache, bin, "9.9"); err == nil {
		t.Error("a world-writable cache was rewritten")
	}
	if err := os.Chmod(cache, 0o644); err != nil {
		t.Fatal(err)
	}
	// A folder writable by others: ignored.
	if err := os.Chmod(filepath.Dir(cache), 0o777); err != nil {
		t.Fatal(err)
	}
	if _, ok := CachedVersion(cache, bin); ok {
		t.Fatal("a cache in a world-writable folder was read")
	}
	if err := os.Chmod(filepath.Dir(cache), 0o755); err != nil {
		t.Fatal(err)
	}
	// A symlink to a good file: never followed.
	link := filepath.Join(dir, "cache", "link")
	if err := os.Symlink(cache, link); err != nil {
		t.Fatal(err)
	}
	if _, ok := CachedVersion(link, bin); ok {
		t.Fatal("a symlinked cache was read")
	}
	if v, ok := CachedVersion(cache, bin); !ok || v != "2.8.0" {
		t.Fatalf("the good cache: %q %v", v, ok)
	}
	if _, ok := CachedVersion("", bin); ok {
		t.Fatal("no cache file set, a hit")
	}
}
