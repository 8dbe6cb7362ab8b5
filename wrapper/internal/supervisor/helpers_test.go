package supervisor

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelpersCounted keeps the helpers' count true, which the loop's end
// waits on: every send on s.events is in a go statement's function, and
// every such go statement comes right after "s.helpers++" (step counts it
// back when it takes the event). A helper not counted would be left
// blocked on its send when the loop ends; one counted twice would keep
// the loop waiting for ever.
func TestHelpersCounted(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	helpers := 0
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, n, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		sends, inGo := 0, 0
		ast.Inspect(f, func(x ast.Node) bool {
			switch x := x.(type) {
			case *ast.SendStmt:
				if isEvents(x.Chan) {
					sends++
				}
			case *ast.BlockStmt:
				for i, st := range x.List {
					g, ok := st.(*ast.GoStmt)
					if !ok || !sendsEvent(g) {
						continue
					}
					ast.Inspect(g, func(y ast.Node) bool {
						if st, ok := y.(*ast.SendStmt); ok && isEvents(st.Chan) {
							inGo++
						}
						return true
					})
					helpers++
					if i == 0 || !isHelpersInc(x.List[i-1]) {
						t.Errorf("%s: the helper started at %s does not come right after s.helpers++", n, fset.Position(g.Pos()))
					}
				}
			}
			return true
		})
		if sends != inGo {
			t.Errorf("%s: %d sends on s.events, %d of them in a helper's goroutine", n, sends, inGo)
		}
	}
	if helpers == 0 {
		t.Fatal("no helper found: the test no longer sees how they are started")
	}
}

// isHelpersInc tells whether st is "s.helpers++".
func isHelpersInc(st ast.Stmt) bool {
	inc, ok := st.(*ast.IncDecStmt)
	if !ok || inc.Tok != token.INC {
		return false
	}
	sel, ok := inc.X.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "helpers" {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == "s"
}
