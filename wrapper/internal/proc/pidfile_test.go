package proc

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParsePIDs(t *testing.T) {
	tests := []struct {
		text    string
		pids    []int
		garbage []string
	}{
		{"123\n", []int{123}, nil},
		{"123\n456\n123\n", []int{123, 456}, nil},
		{"", nil, nil},
		{"  \n\t", nil, nil},
		{"12abc\n-5\n0\n1\n99999999999\n$(reboot)\n77", []int{77}, []string{"12abc", "-5", "0", "1", "99999999999", "$(reboot)"}},
	}
	for _, tt := range tests {
		pids, garbage := ParsePIDs(tt.text)
		if !reflect.DeepEqual(pids, tt.pids) || !reflect.DeepEqual(garbage, tt.garbage) {
			t.Errorf("%q: got %v %v, want %v %v", tt.text, pids, garbage, tt.pids, tt.garbage)
		}
	}
}

func FuzzParsePIDs(f *testing.F) {
	seeds, _ := filepath.Glob("../../../testdata/pidfile/*.txt")
	if len(seeds) == 0 {
		f.Fatal("no seeds in ../../../testdata/pidfile")
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, text string) {
		pids, garbage := ParsePIDs(text)
		for _, p := range pids {
			if p <= 1 || p > 1<<22 {
				t.Fatalf("pid %d out of range from %q", p, text)
			}
		}
		if len(pids)+len(garbage) > len(strings.Fields(text)) {
			t.Fatalf("more results than fields in %q", text)
		}
	})
}

func TestWritePIDFileAtomicAndReplacesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "haproxy.pid")
	if err := os.Symlink(victim, p); err != nil {
		t.Fatal(err)
	}
	if err := WritePIDFile(p, []int{42, 43}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "42\n43\n" {
		t.Fatalf("pid file = %q", b)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Fatalf("the symlink's target was written: %q", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("temporary files left: %v", ents)
	}
	err := WritePIDFile(filepath.Join(dir, "missing", "x.pid"), []int{1})
	if err == nil || !strings.Contains(err.Error(), "write pid file") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unwritable folder: err = %v", err)
	}
}

func TestFilterOwn(t *testing.T) {
	mine, foreign := FilterOwn([]int{5, 6, 7}, func(p int) bool { return p != 6 })
	if !reflect.DeepEqual(mine, []int{5, 7}) || !reflect.DeepEqual(foreign, []int{6}) {
		t.Fatalf("got %v %v", mine, foreign)
	}
}

// TestWriteFileAtomicNeverFollows: a symlink at the target is replaced, its
// target never written; temporary names are random, so nothing planted is
// written through.
func TestWriteFileAtomicNeverFollows(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep"), 0o644)
	target := filepath.Join(dir, "m.prom")
	os.Symlink(victim, target)
	if err := WriteFileAtomic(target, []byte("x 1\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	fi, err := os.Lstat(target)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o640 {
		t.Errorf("target after the write: %v %v, want a regular file, mode 0640", fi, err)
	}
	if b, _ := os.ReadFile(target); string(b) != "x 1\n" {
		t.Errorf("target content %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("temporary files left: %v", ents)
	}
}
