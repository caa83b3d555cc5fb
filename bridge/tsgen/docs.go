package tsgen

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"reflect"
	"strings"
)

// Docs holds the doc comments of one Go package's types and their fields,
// read from its source by [ParseDocs]. A compiled program has no comments:
// a host that wants them in the declarations it serves embeds its source
// (//go:embed *.go) and parses it at start. It is safe for concurrent use
// once made.
type Docs struct {
	pkgPath string
	types   map[string]string            // type name -> doc
	fields  map[string]map[string]string // type name -> field name -> doc
}

// ParseDocs reads the doc comments of the package whose import path is
// pkgPath (as [reflect.Type.PkgPath] gives it: "main" for a command) from
// the .go files at the root of fsys, test files left out.
func ParseDocs(fsys fs.FS, pkgPath string) (*Docs, error) {
	names, err := fs.Glob(fsys, "*.go")
	if err != nil {
		return nil, err
	}
	d := &Docs{pkgPath: pkgPath, types: map[string]string{}, fields: map[string]map[string]string{}}
	fset := token.NewFileSet()
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(fset, name, src, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("tsgen: %w", err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				doc := ts.Doc
				if doc == nil && len(gd.Specs) == 1 {
					doc = gd.Doc
				}
				d.types[ts.Name.Name] = doc.Text()
				if st, ok := ts.Type.(*ast.StructType); ok {
					d.fields[ts.Name.Name] = structDocs(st)
				}
			}
		}
	}
	return d, nil
}

// structDocs returns the doc (or, failing it, the line comment) of each
// named field.
func structDocs(st *ast.StructType) map[string]string {
	m := map[string]string{}
	for _, f := range st.Fields.List {
		text := f.Doc.Text()
		if text == "" {
			text = f.Comment.Text()
		}
		if text == "" {
			continue
		}
		for _, n := range f.Names {
			m[n.Name] = text
		}
		if len(f.Names) == 0 { // embedded: named after its type
			t := f.Type
			if s, ok := t.(*ast.StarExpr); ok {
				t = s.X
			}
			switch t := t.(type) {
			case *ast.Ident:
				m[t.Name] = text
			case *ast.SelectorExpr:
				m[t.Sel.Name] = text
			}
		}
	}
	return m
}

// baseName is a type's name without type arguments.
func baseName(t reflect.Type) string {
	n, _, _ := strings.Cut(t.Name(), "[")
	return n
}

func (g *gen) typeDoc(t reflect.Type) string {
	for _, d := range g.cfg.docs {
		if d.pkgPath == t.PkgPath() {
			if s := d.types[baseName(t)]; s != "" {
				return s
			}
		}
	}
	return ""
}

func (g *gen) fieldDoc(owner reflect.Type, field string) string {
	if owner == nil || owner.Name() == "" {
		return ""
	}
	for _, d := range g.cfg.docs {
		if d.pkgPath == owner.PkgPath() {
			if s := d.fields[baseName(owner)][field]; s != "" {
				return s
			}
		}
	}
	return ""
}
