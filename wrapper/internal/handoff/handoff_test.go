package handoff

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		doc  Doc
	}{
		{"full", Doc{Version: Version, Files: []FileRef{{Name: "control", FD: 3}, {Name: "output-7", FD: 1 << 20}},
			State: json.RawMessage(`{"gens":[{"gen":7,"pid":4242}],"pending":true}`)}},
		{"no files", Doc{Version: Version, State: json.RawMessage(`{}`)}},
		{"empty file list", Doc{Version: Version, Files: []FileRef{}, State: json.RawMessage(`[]`)}},
		{"odd names", Doc{Version: Version, Files: []FileRef{{Name: "", FD: 9}, {Name: "é \"x\" <&>", FD: 10}}, State: json.RawMessage(`"s"`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Encode(tt.doc)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(%s): %v", b, err)
			}
			if !reflect.DeepEqual(got, tt.doc) {
				t.Fatalf("Decode(Encode(doc)) = %+v (State %s), want %+v (State %s)", got, got.State, tt.doc, tt.doc.State)
			}
		})
	}
}

func TestEncodeSetsVersion(t *testing.T) {
	b, err := Encode(Doc{State: json.RawMessage(`1`)})
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode(%s): %v", b, err)
	}
	if d.Version != Version {
		t.Fatalf("version = %d, want %d", d.Version, Version)
	}
}

func TestDecodeRefusesVersions(t *testing.T) {
	tests := []struct{ name, doc string }{
		{"next version", `{"version":2,"files":[],"state":{}}`},
		{"zero", `{"version":0,"state":{}}`},
		{"negative", `{"version":-1}`},
		{"missing", `{"files":[],"state":{}}`},
		{"null", `{"version":null,"state":{}}`},
		{"empty object", `{}`},
		// A future version may change anything else: the version is
		// read before the rest, so its other fields do not matter.
		{"future layout", `{"version":2,"generations":[1,2],"files":{"control":3}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Decode([]byte(tt.doc))
			if !errors.Is(err, ErrVersion) {
				t.Fatalf("Decode(%s) = %+v, %v; want an error matching ErrVersion", tt.doc, d, err)
			}
			if !reflect.DeepEqual(d, Doc{}) {
				t.Errorf("Decode(%s) on error = %+v, want the zero Doc", tt.doc, d)
			}
		})
	}
}

func TestDecodeRefusesMalformed(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"unknown top-level field", `{"version":1,"state":{},"extra":true}`, "unknown field"},
		{"unknown file field", `{"version":1,"files":[{"name":"control","fd":3,"mode":"rw"}]}`, "unknown field"},
		{"fd 0", `{"version":1,"files":[{"name":"stdin","fd":0}]}`, "descriptor 0"},
		{"fd 2", `{"version":1,"files":[{"name":"stderr","fd":2}]}`, "descriptor 2"},
		{"negative fd", `{"version":1,"files":[{"name":"x","fd":-1}]}`, "descriptor -1"},
		{"fd too large", `{"version":1,"files":[{"name":"x","fd":1048577}]}`, "descriptor 1048577"},
		{"fd twice", `{"version":1,"files":[{"name":"a","fd":5},{"name":"b","fd":5}]}`, `file 1 ("b") has descriptor 5`},
		{"fd not a number", `{"version":1,"files":[{"name":"x","fd":"3"}]}`, "hand-off document"},
		{"fd not an integer", `{"version":1,"files":[{"name":"x","fd":3.5}]}`, "hand-off document"},
		{"version not an integer", `{"version":"1"}`, "hand-off document"},
		{"not JSON", `version=1`, "hand-off document"},
		{"empty", ``, "hand-off document"},
		{"trailing data", `{"version":1} {"version":1}`, "hand-off document"},
		{"array", `[1]`, "hand-off document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Decode([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Decode(%s) = %+v, nil; want an error containing %q", tt.doc, d, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Decode(%s) error = %q, want it to contain %q", tt.doc, err, tt.want)
			}
			if errors.Is(err, ErrVersion) {
				t.Errorf("Decode(%s) error = %v matches ErrVersion; the version is fine", tt.doc, err)
			}
			if !reflect.DeepEqual(d, Doc{}) {
				t.Errorf("Decode(%s) on error = %+v, want the zero Doc", tt.doc, d)
			}
		})
	}
}

func TestDecodeAcceptsEdgeFDs(t *testing.T) {
	d, err := Decode([]byte(`{"version":1,"files":[{"name":"lo","fd":3},{"name":"hi","fd":1048576}],"state":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []FileRef{{"lo", 3}, {"hi", 1 << 20}}; !reflect.DeepEqual(d.Files, want) {
		t.Fatalf("files = %+v, want %+v", d.Files, want)
	}
}

// sameJSON tells whether two JSON texts hold the same value (a nil
// RawMessage is JSON null, as Encode writes it). Numbers are compared as
// written, not as float64.
func sameJSON(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	parse := func(r json.RawMessage) any {
		if r == nil {
			r = json.RawMessage("null")
		}
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("state %q: %v", r, err)
		}
		return v
	}
	return reflect.DeepEqual(parse(a), parse(b))
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"files":[{"name":"control","fd":3},{"name":"output-2","fd":17}],"state":{"gens":[{"gen":2,"pid":99}]}}`,
		`{"version":1}`,
		`{"version":1,"files":null,"state":null}`,
		`{"version":1,"state":"<\u2028>&","files":[]}`,
		`{"Version":1,"FILES":[{"NAME":"x","Fd":4}]}`,
		`{"version":1,"state":{"n":1e400,"m":-0.0}}`,
		`{"version":2}`,
		`{"version":1,"extra":1}`,
		`{"version":1,"files":[{"name":"a","fd":3},{"name":"b","fd":3}]}`,
		`{"version":1}  `,
		`{"version":1} x`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d1, err := Decode(b)
		if err != nil {
			if !reflect.DeepEqual(d1, Doc{}) {
				t.Fatalf("Decode(%q) = %+v with error %v, want the zero Doc", b, d1, err)
			}
			return
		}
		if d1.Version != Version {
			t.Fatalf("Decode(%q) accepted version %d", b, d1.Version)
		}
		b2, err := Encode(d1)
		if err != nil {
			t.Fatalf("Encode(Decode(%q)): %v", b, err)
		}
		d2, err := Decode(b2)
		if err != nil {
			t.Fatalf("Decode(%q), re-encoded from %q: %v", b2, b, err)
		}
		if d2.Version != d1.Version || !reflect.DeepEqual(d2.Files, d1.Files) || !sameJSON(t, d2.State, d1.State) {
			t.Fatalf("round trip of %q: got %+v (State %s), want %+v (State %s)", b, d2, d2.State, d1, d1.State)
		}
		// From then on the encoding is stable, byte for byte.
		b3, err := Encode(d2)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", d2, err)
		}
		if !bytes.Equal(b3, b2) {
			t.Fatalf("re-encoding is not stable: %q then %q", b2, b3)
		}
	})
}
