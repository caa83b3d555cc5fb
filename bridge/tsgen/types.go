package tsgen

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	rawMessageType    = reflect.TypeFor[json.RawMessage]()
	timeType          = reflect.TypeFor[time.Time]()
)

// gen maps Go types to TypeScript and collects the named declarations.
type gen struct {
	cfg   config
	names map[reflect.Type]string // named Go type -> TS name
	taken map[string]reflect.Type
	decls map[string]string // TS name -> declaration
}

func newGen(cfg config) *gen {
	g := &gen{
		cfg:   cfg,
		names: make(map[reflect.Type]string),
		taken: make(map[string]reflect.Type),
		decls: make(map[string]string),
	}
	for _, n := range reserved {
		g.taken[n] = nil
	}
	return g
}

// reserved are names a declaration may not take: the interface Generate
// writes, TypeScript's own types and JavaScript's reserved words (which Go
// allows as the names of unexported types).
var reserved = strings.Fields(`Topics any bigint boolean never null number object string symbol undefined unknown void
	Array Date Error Function Map Object Promise Record Set
	break case catch class const continue debugger default delete do else enum export extends false finally
	for function if implements import in instanceof interface let new package private protected public
	return static super switch this throw true try typeof var while with yield`)

// top is the type of a payload: a whole JSON value.
func (g *gen) top(t reflect.Type) (string, error) {
	if t == nil {
		return "unknown", nil
	}
	s, err := g.ref(t)
	if err != nil {
		return "", err
	}
	return s + nullable(t), nil
}

// nullable is " | null" for the kinds encoding/json writes as null when
// nil, unless the type's own declaration already says unknown.
func nullable(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		return " | null"
	}
	return ""
}

// special is the type encoding/json gives t by its methods, if any.
func (g *gen) special(t reflect.Type) (string, bool) {
	for _, f := range g.cfg.override {
		if s, ok := f(t); ok {
			return s, true
		}
	}
	switch {
	case t == rawMessageType:
		return "unknown", true
	case t == timeType:
		return "string", true
	case t.Kind() == reflect.Pointer:
		return "", false // its element decides; null is added by the caller
	case implements(t, marshalerType):
		return "unknown", true
	case implements(t, textMarshalerType):
		return "string", true
	}
	return "", false
}

// implements reports whether t or *t implements iface: encoding/json
// calls a pointer method on every addressable value.
func implements(t, iface reflect.Type) bool {
	return t.Implements(iface) || t.Kind() != reflect.Interface && reflect.PointerTo(t).Implements(iface)
}

// ref returns the TypeScript type of t without the null its nil may add.
func (g *gen) ref(t reflect.Type) (string, error) {
	if s, ok := g.special(t); ok {
		return s, nil
	}
	if t.Kind() == reflect.Pointer {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		return g.ref(t)
	}
	if t.Name() == "" || t.PkgPath() == "" {
		return g.body(t)
	}
	if name, ok := g.names[t]; ok {
		return name, nil
	}
	name := g.nameFor(t)
	g.names[t] = name
	g.taken[name] = t
	body, err := g.body(t)
	if err != nil {
		return "", err
	}
	var d strings.Builder
	g.writeDoc(&d, "", g.typeDoc(t))
	if t.Kind() == reflect.Struct {
		fmt.Fprintf(&d, "export interface %s %s\n", name, body)
	} else {
		fmt.Fprintf(&d, "export type %s = %s;\n", name, body)
	}
	g.decls[name] = d.String()
	return name, nil
}

// body is the type t stands for, written out.
func (g *gen) body(t reflect.Type) (string, error) {
	switch t.Kind() {
	case reflect.Bool:
		return "boolean", nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return "number", nil
	case reflect.String:
		return "string", nil
	case reflect.Interface:
		return "unknown", nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			p := reflect.PointerTo(t.Elem())
			if !p.Implements(marshalerType) && !p.Implements(textMarshalerType) {
				return "string", nil // base64
			}
		}
		e, err := g.top(t.Elem())
		if err != nil {
			return "", err
		}
		return arrayOf(e), nil
	case reflect.Array:
		e, err := g.top(t.Elem())
		if err != nil {
			return "", err
		}
		if t.Len() <= 8 {
			return "[" + strings.Join(slices.Repeat([]string{e}, t.Len()), ", ") + "]", nil
		}
		return arrayOf(e), nil
	case reflect.Map:
		switch k := t.Key(); k.Kind() {
		case reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		default:
			if !k.Implements(textMarshalerType) {
				return "", fmt.Errorf("unsupported map key type %v", k)
			}
		}
		v, err := g.top(t.Elem())
		if err != nil {
			return "", err
		}
		return "{ [key: string]: " + v + " }", nil
	case reflect.Struct:
		return g.structBody(t)
	}
	return "", fmt.Errorf("unsupported type %v", t)
}

func arrayOf(e string) string {
	if strings.ContainsAny(e, " |&") {
		return "(" + e + ")[]"
	}
	return e + "[]"
}

// structBody writes the members encoding/json writes for a struct.
func (g *gen) structBody(t reflect.Type) (string, error) {
	fields := typeFields(t)
	if len(fields) == 0 {
		return "{ [key: string]: never }", nil
	}
	var b strings.Builder
	b.WriteString("{\n")
	for _, f := range fields {
		ts, err := g.ref(f.typ)
		if err != nil {
			return "", fmt.Errorf("%v.%s: %w", t, f.goName, err)
		}
		optional := f.viaPointer || f.omitZero
		if f.quoted {
			ts = "string"
		}
		if nullable(f.typ) != "" && ts != "unknown" {
			// omitempty and omitzero leave out a nil pointer, slice or map.
			if !(f.omitEmpty || f.omitZero) {
				ts += " | null"
			} else {
				optional = true
			}
		} else if f.omitEmpty && canBeEmpty(f.typ) {
			optional = true
		}
		g.writeDoc(&b, "  ", g.fieldDoc(f.owner, f.goName))
		q := ""
		if optional {
			q = "?"
		}
		fmt.Fprintf(&b, "  %s%s: %s;\n", memberName(f.name), q, ts)
	}
	b.WriteString("}")
	return b.String(), nil
}

// canBeEmpty reports whether encoding/json's omitempty can leave out a
// value of type t: every kind but a struct (and a non-empty array).
func canBeEmpty(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Struct:
		return false
	case reflect.Array:
		return t.Len() == 0
	}
	return true
}

// memberName quotes a JSON name that is not a plain identifier.
func memberName(s string) string {
	ok := s != ""
	for i, r := range s {
		if !(r == '_' || r == '$' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || i > 0 && '0' <= r && r <= '9') {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	q, _ := json.Marshal(s)
	return string(q)
}

// nameFor picks the TypeScript name of a named Go type: its name, with
// type arguments joined by '_', prefixed with its package's name when
// another package's type took the name.
func (g *gen) nameFor(t reflect.Type) string {
	base := tsIdent(t.Name())
	if _, taken := g.taken[base]; !taken {
		return base
	}
	pkg := t.PkgPath()
	pkg = pkg[strings.LastIndex(pkg, "/")+1:]
	name := tsIdent(pkg) + "_" + base
	for i := 2; ; i++ {
		if _, taken := g.taken[name]; !taken {
			return name
		}
		name = fmt.Sprintf("%s_%s%d", tsIdent(pkg), base, i)
	}
}

// tsIdent makes an identifier of a Go type name, which for an instantiated
// generic type holds its type arguments: "Page[example.com/x.Item]" is
// "Page_Item".
func tsIdent(name string) string {
	var out []string
	for _, tok := range strings.FieldsFunc(name, func(r rune) bool {
		return !(r == '_' || r == '.' || r == '/' || r == '-' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r > 0x7f)
	}) {
		tok = tok[strings.LastIndex(tok, ".")+1:]
		tok = strings.NewReplacer("/", "_", "-", "_").Replace(tok)
		if tok != "" {
			out = append(out, tok)
		}
	}
	return strings.Join(out, "_")
}

func (g *gen) writeDoc(b *strings.Builder, indent, doc string) {
	doc = strings.TrimSpace(doc)
	if doc == "" {
		return
	}
	doc = strings.ReplaceAll(doc, "*/", "*\\/")
	lines := strings.Split(doc, "\n")
	if len(lines) == 1 {
		fmt.Fprintf(b, "%s/** %s */\n", indent, lines[0])
		return
	}
	fmt.Fprintf(b, "%s/**\n", indent)
	for _, l := range lines {
		fmt.Fprintf(b, "%s%s\n", indent, strings.TrimRight(" * "+l, " "))
	}
	fmt.Fprintf(b, "%s */\n", indent)
}

// writeDecls writes the named declarations, sorted by name.
func (g *gen) writeDecls(buf *bytes.Buffer) {
	names := make([]string, 0, len(g.decls))
	for n := range g.decls {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		buf.WriteString("\n")
		buf.WriteString(g.decls[n])
	}
}
