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
// caller) and calls it (or, in a row that says "s.events", posts on s.events
// from a goroutine, and the callee receives from it), the rows are numbered
// in order, and the counts in the sentence above the list match the rows
// (and README.md says them).
func TestDocHops(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^//\thop\s+(\d+)\s+(\w+) -> (\w+)\s+(\S+\.go)(.*)$`)
	rows := row.FindAllStringSubmatch(string(doc), -1)
	if len(rows) < 2 {
		t.Fatalf("doc.go lists %d hops: the list is gone or its form changed", len(rows))
	}
	funcs := packageFuncs(t)
	files := map[string]bool{}
	reached := map[string]bool{rows[0][2]: true}
	for i, r := range rows {
		n, caller, callee, file := r[1], r[2], r[3], r[4]
		if fd := funcs[caller]; fd == nil {
			t.Errorf("row %s: no function %s in the package", n, caller)
		} else if strings.Contains(r[5], "s.events") {
			if !postsEvent(fd) {
				t.Errorf("row %s: %s starts no goroutine that posts on s.events", n, caller)
			}
			if fe := funcs[callee]; fe == nil || !receivesEvent(fe) {
				t.Errorf("row %s: %s does not receive from s.events", n, callee)
			}
		} else if !calls(fd, callee) {
			t.Errorf("row %s: %s does not call %s", n, caller, callee)
		}
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
	if readme := readme(t); !strings.Contains(readme, counts[0]) {
		t.Errorf("README.md does not say %q, as doc.go does", counts[0])
	}
}

// packageFuncs is every function and method of the package's non-test
// files, by name.
func packageFuncs(t *testing.T) map[string]*ast.FuncDecl {
	t.Helper()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	funcs := map[string]*ast.FuncDecl{}
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), n, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok {
				funcs[fd.Name.Name] = fd
			}
		}
	}
	return funcs
}

// calls tells whether fd calls a function or method named name.
func calls(fd *ast.FuncDecl, name string) bool {
	found := false
	ast.Inspect(fd, func(x ast.Node) bool {
		if c, ok := x.(*ast.CallExpr); ok {
			switch f := c.Fun.(type) {
			case *ast.Ident:
				found = found || f.Name == name
			case *ast.SelectorExpr:
				found = found || f.Sel.Name == name
			}
		}
		return !found
	})
	return found
}

// isEvents tells whether e is s.events.
func isEvents(e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "events" {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == "s"
}

// postsEvent tells whether n holds a go statement whose function sends on
// s.events.
func postsEvent(n ast.Node) bool {
	found := false
	ast.Inspect(n, func(x ast.Node) bool {
		if g, ok := x.(*ast.GoStmt); ok && sendsEvent(g) {
			found = true
		}
		return !found
	})
	return found
}

// sendsEvent tells whether n holds a send on s.events.
func sendsEvent(n ast.Node) bool {
	found := false
	ast.Inspect(n, func(x ast.Node) bool {
		if st, ok := x.(*ast.SendStmt); ok && isEvents(st.Chan) {
			found = true
		}
		return !found
	})
	return found
}

// receivesEvent tells whether fd receives from s.events.
func receivesEvent(fd *ast.FuncDecl) bool {
	found := false
	ast.Inspect(fd, func(x ast.Node) bool {
		if u, ok := x.(*ast.UnaryExpr); ok && u.Op == token.ARROW && isEvents(u.X) {
			found = true
		}
		return !found
	})
	return found
}

// readme is the repository's README.md, whose "Architecture" names the
// rooms and the hops too.
func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
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

// maxRoom is the most lines a file of the package holds, maxMethods the
// most lines of Supervisor's methods in one file.
const (
	maxRoom    = 400
	maxMethods = 300
)

// TestDocRooms keeps the package doc's rooms true: every non-test file of
// the package is listed once (and named in README.md), none is longer than maxRoom or holds more
// than maxMethods lines of Supervisor's methods, and no file uses a
// function, method, type, constant or variable of a file listed after it
// (no dependency runs back up). A method counts when called on the
// receiver s.
func TestDocRooms(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	rank := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^//\t(\w+\.go)\s`).FindAllStringSubmatch(string(doc), -1) {
		if _, dup := rank[m[1]]; dup {
			t.Errorf("doc.go lists %s twice", m[1])
		}
		rank[m[1]] = len(order)
		order = append(order, m[1])
	}
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	biggest, biggestRoom := 0, ""
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") || n == "doc.go" {
			continue
		}
		if _, ok := rank[n]; !ok {
			t.Errorf("%s is not in doc.go's rooms", n)
		}
		f, err := parser.ParseFile(fset, n, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files[n] = f
		lines := fset.File(f.Pos()).LineCount()
		if lines > maxRoom {
			t.Errorf("%s has %d lines: a room holds %d at the most, split it by what happens in it", n, lines, maxRoom)
		}
		if lines > biggest {
			biggest, biggestRoom = lines, n
		}
	}
	t.Logf("largest room: %s, %d lines (at most %d)", biggestRoom, biggest, maxRoom)
	text := readme(t)
	for n := range rank {
		if files[n] == nil {
			t.Errorf("doc.go lists %s, which is not in the package", n)
		}
		if !strings.Contains(text, "`"+n+"`") {
			t.Errorf("README.md's Architecture does not name %s", n)
		}
	}
	// Where each package-level name and each method of Supervisor is declared.
	decl, method := map[string]string{}, map[string]string{}
	for n, f := range files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					decl[d.Name.Name] = n
				} else if recvType(d.Recv) == "Supervisor" {
					method[d.Name.Name] = n
				}
			case *ast.GenDecl:
				for _, sp := range d.Specs {
					switch sp := sp.(type) {
					case *ast.TypeSpec:
						decl[sp.Name.Name] = n
					case *ast.ValueSpec:
						for _, id := range sp.Names {
							decl[id.Name] = n
						}
					}
				}
			}
		}
	}
	mostMethods, mostMethodsRoom := 0, ""
	defer func() {
		t.Logf("most lines of Supervisor's methods in one room: %s, %d (at most %d)", mostMethodsRoom, mostMethods, maxMethods)
	}()
	for n, f := range files {
		lines := 0
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv != nil && recvType(fd.Recv) == "Supervisor" {
				lines += fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
			}
		}
		if lines > mostMethods {
			mostMethods, mostMethodsRoom = lines, n
		}
		if lines > maxMethods {
			t.Errorf("%s holds %d lines of Supervisor's methods: at most %d a file", n, lines, maxMethods)
		}
		up := func(name, in string) {
			if in != "" && in != n && rank[in] > rank[n] {
				t.Errorf("%s uses %s of %s, a room listed after it", n, name, in)
			}
		}
		ast.Inspect(f, func(x ast.Node) bool {
			switch x := x.(type) {
			case *ast.SelectorExpr:
				if id, ok := x.X.(*ast.Ident); ok && id.Name == "s" {
					up(x.Sel.Name, method[x.Sel.Name])
				}
				ast.Inspect(x.X, func(y ast.Node) bool { return inspectIdent(y, up, decl) })
				return false
			case *ast.Ident:
				inspectIdent(x, up, decl)
			}
			return true
		})
	}
}

// inspectIdent reports an identifier that names a package-level declaration
// (parsed file by file, those of other files stay unresolved).
func inspectIdent(x ast.Node, up func(name, in string), decl map[string]string) bool {
	if id, ok := x.(*ast.Ident); ok && id.Obj == nil {
		up(id.Name, decl[id.Name])
	}
	return true
}

// recvType is the name of a method's receiver type.
func recvType(r *ast.FieldList) string {
	e := r.List[0].Type
	if st, ok := e.(*ast.StarExpr); ok {
		e = st.X
	}
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}
