package supervisor

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDocHops keeps the package doc's list of a SIGUSR2's hops true: every
// row's callee is declared in the file the row names, every row's caller is
// an earlier row's callee (a chain: a callee that returns hands back to its
// caller), the rows are numbered in order, and the counts
// in the sentence above the list match the rows.
func TestDocHops(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^//\thop\s+(\d+)\s+(\w+) -> (\w+)\s+(\S+\.go)`)
	rows := row.FindAllStringSubmatch(string(doc), -1)
	if len(rows) < 2 {
		t.Fatalf("doc.go lists %d hops: the list is gone or its form changed", len(rows))
	}
	files := map[string]bool{}
	reached := map[string]bool{rows[0][2]: true}
	for i, r := range rows {
		n, caller, callee, file := r[1], r[2], r[3], r[4]
		if got, want := n, strconv.Itoa(i+1); got != want {
			t.Errorf("row %q is numbered %s, want %s", r[0], got, want)
		}
		if !reached[caller] {
			t.Errorf("row %s: caller %s is no earlier row's callee", n, caller)
		}
		reached[callee] = true
		files[file] = true
		path := file
		if strings.Contains(file, "/") {
			path = filepath.Join("..", file)
		}
		if !declares(t, path, callee) {
			t.Errorf("row %s: %s does not declare %s", n, file, callee)
		}
	}
	counts := regexp.MustCompile(`(\d+) calls over (\d+) files`).FindStringSubmatch(string(doc))
	if counts == nil {
		t.Fatalf("doc.go does not say how many calls over how many files")
	}
	if got, want := counts[1], strconv.Itoa(len(rows)); got != want {
		t.Errorf("doc.go says %s calls, its list has %s", got, want)
	}
	if got, want := counts[2], strconv.Itoa(len(files)); got != want {
		t.Errorf("doc.go says %s files, its list names %s", got, want)
	}
}

// declares tells whether the Go file at path declares a function or method
// named name.
func declares(t *testing.T, path, name string) bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == name {
			return true
		}
	}
	return false
}
