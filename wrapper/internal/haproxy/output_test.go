package haproxy

import "testing"

func TestSummarizeCheck(t *testing.T) {
	out := "[NOTICE] x\n[ALERT]    (1) : config : parsing [a.cfg:3] : unknown keyword 'foo'\n[ALERT]    (1) : config : Fatal errors found\n"
	if got, want := SummarizeCheck(out), "[ALERT]    (1) : config : parsing [a.cfg:3] : unknown keyword 'foo' | [ALERT]    (1) : config : Fatal errors found"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := SummarizeCheck(""); got != "no output" {
		t.Errorf("empty: got %q", got)
	}
}
