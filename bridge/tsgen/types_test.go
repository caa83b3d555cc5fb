package tsgen

import (
	"bytes"
	"encoding/json"
	"image"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

type Basic struct {
	B   bool
	I   int
	I64 int64
	U8  uint8
	F   float64
	S   string
	Any any
	un  int //nolint:unused // unexported: not written
}

type Tags struct {
	Renamed  string `json:"renamed"`
	Skipped  string `json:"-"`
	Dash     string `json:"-,"`
	Kebab    string `json:"my-name"`
	Invalid  string `json:"'x'"`
	NoName   string `json:",omitempty"`
	Quoted   int    `json:"quoted,string"`
	QuotedP  *bool  `json:"quotedp,string"`
	NotQuote []int  `json:"notquote,string"`
}

type Omit struct {
	S     string            `json:"s,omitempty"`
	N     int               `json:"n,omitempty"`
	P     *int              `json:"p,omitempty"`
	L     []string          `json:"l,omitempty"`
	M     map[string]int    `json:"m,omitempty"`
	St    Basic2            `json:"st,omitempty"`
	Arr0  [0]int            `json:"arr0,omitempty"`
	Arr2  [2]int            `json:"arr2,omitempty"`
	Z     Basic2            `json:"z,omitzero"`
	ZP    *Basic2           `json:"zp,omitzero"`
	ZL    []int             `json:"zl,omitzero"`
	Plain map[string]string `json:"plain"`
}

type Basic2 struct{ X int }

type Pointers struct {
	P  *int
	PP **string
	PS *Basic2
	PT *time.Time
}

type Collections struct {
	Sl    []int
	SlP   []*int
	Bytes []byte
	BArr  [4]byte
	Tup   [3]string
	Long  [9]int
	Nest  [][]string
}

type Key string
type IntKey int

type Maps struct {
	S  map[string]int
	K  map[Key]bool
	I  map[int]string
	IK map[IntKey]string
	U  map[uint16]string
	T  map[netip.Addr]int
}

type Inner struct {
	A int
	B int `json:"b"`
}

type inner2 struct {
	C int
}

type Deep struct{ D int }

type Mid struct{ Deep }

type Embeds struct {
	Inner
	inner2
	*Deep2
	Tagged Basic2 `json:"tagged"`
	Other  Inner2 `json:"other"`
	Mid
	Key
}

type Deep2 struct{ E int }

type Inner2 struct{ A int }

// Conflicts: X at the same depth from two embeddings annihilates; Y is
// tagged in one only, so that one wins; Z at depth 0 hides the embedded.
type Conflicts struct {
	CA
	CB
	Z int
}

type CA struct {
	X int
	Y int `json:"Y"`
	Z string
}

type CB struct {
	X int
	Y int
}

type Marsh struct{ v int }

func (Marsh) MarshalJSON() ([]byte, error) { return []byte("1"), nil }

type PtrMarsh struct{ v int }

func (*PtrMarsh) MarshalJSON() ([]byte, error) { return []byte("1"), nil }

type Text struct{ v int }

func (Text) MarshalText() ([]byte, error) { return []byte("t"), nil }

type Special struct {
	T    time.Time
	Raw  json.RawMessage
	M    Marsh
	PM   PtrMarsh
	Tx   Text
	Addr netip.Addr
	Ov   Overridden
}

type Overridden struct{ v int }

func (Overridden) MarshalJSON() ([]byte, error) { return []byte(`"x"`), nil }

type Tree struct {
	Name     string
	Children []Tree
	Parent   *Tree
}

type Page[T any] struct {
	Items []T
	Next  string
}

type Pair[K comparable, V any] struct {
	K K
	V V
}

type Color string
type IDs []int

type Named struct {
	C   Color
	IDs IDs
	Opt IDs `json:",omitempty"`
}

type Point struct{ Name string }

type Collide struct {
	Mine  Point
	Image image.Point
}

type Documented struct {
	A int
	B string `json:"b"`
}

type Empty struct{}

// Record is a TypeScript name already.
type Record struct {
	Next map[string]*Record
}

type JSONMap map[string]JSONMap

func TestTypes(t *testing.T) {
	docs, err := ParseDocs(fstest.MapFS{"doc.go": {Data: []byte(`package tsgen

// Documented says what it is.
// On two lines; no */ breaks out.
type Documented struct {
	// A is documented.
	A int
	B string ` + "`json:\"b\"`" + ` // B has a line comment.
}
`)}}, reflect.TypeFor[Documented]().PkgPath())
	if err != nil {
		t.Fatal(err)
	}
	override := Override(func(t reflect.Type) (string, bool) {
		if t == reflect.TypeFor[Overridden]() {
			return "'x' | 'y'", true
		}
		return "", false
	})
	for _, tc := range []struct {
		name  string
		typ   reflect.Type
		want  string // the payload type
		decls string // the named declarations, in order
	}{
		{"bool", reflect.TypeFor[bool](), "boolean", ""},
		{"int", reflect.TypeFor[int64](), "number", ""},
		{"float", reflect.TypeFor[float32](), "number", ""},
		{"string", reflect.TypeFor[string](), "string", ""},
		{"interface", reflect.TypeFor[any](), "unknown", ""},
		{"nil type", nil, "unknown", ""},
		{"pointer", reflect.TypeFor[*int](), "number | null", ""},
		{"slice", reflect.TypeFor[[]string](), "string[] | null", ""},
		{"map", reflect.TypeFor[map[string]int](), "{ [key: string]: number } | null", ""},
		{"bytes", reflect.TypeFor[[]byte](), "string | null", ""},
		{"struct{}", reflect.TypeFor[struct{}](), "{ [key: string]: never }", ""},
		{"anonymous struct", reflect.TypeFor[struct {
			Room string `json:"room"`
		}](), "{\n  room: string;\n}", ""},
		{"basic kinds, unexported left out", reflect.TypeFor[Basic](), "Basic",
			"export interface Basic {\n  B: boolean;\n  I: number;\n  I64: number;\n  U8: number;\n  F: number;\n  S: string;\n  Any: unknown;\n}\n"},
		{"tags", reflect.TypeFor[Tags](), "Tags",
			"export interface Tags {\n  renamed: string;\n  \"-\": string;\n  \"my-name\": string;\n  Invalid: string;\n  NoName?: string;\n  quoted: string;\n  quotedp: string | null;\n  notquote: number[] | null;\n}\n"},
		{"omitempty and omitzero", reflect.TypeFor[Omit](), "Omit",
			"export interface Basic2 {\n  X: number;\n}\n" +
				"export interface Omit {\n  s?: string;\n  n?: number;\n  p?: number;\n  l?: string[];\n  m?: { [key: string]: number };\n  st: Basic2;\n  arr0?: [];\n  arr2: [number, number];\n  z?: Basic2;\n  zp?: Basic2;\n  zl?: number[];\n  plain: { [key: string]: string } | null;\n}\n"},
		{"pointers", reflect.TypeFor[Pointers](), "Pointers",
			"export interface Basic2 {\n  X: number;\n}\n" +
				"export interface Pointers {\n  P: number | null;\n  PP: string | null;\n  PS: Basic2 | null;\n  PT: string | null;\n}\n"},
		{"slices and arrays", reflect.TypeFor[Collections](), "Collections",
			"export interface Collections {\n  Sl: number[] | null;\n  SlP: (number | null)[] | null;\n  Bytes: string | null;\n  BArr: [number, number, number, number];\n  Tup: [string, string, string];\n  Long: number[];\n  Nest: (string[] | null)[] | null;\n}\n"},
		{"map keys", reflect.TypeFor[Maps](), "Maps",
			"export interface Maps {\n  S: { [key: string]: number } | null;\n  K: { [key: string]: boolean } | null;\n  I: { [key: string]: string } | null;\n  IK: { [key: string]: string } | null;\n  U: { [key: string]: string } | null;\n  T: { [key: string]: number } | null;\n}\n"},
		{"embedded structs", reflect.TypeFor[Embeds](), "Embeds",
			"export interface Basic2 {\n  X: number;\n}\n" +
				"export interface Embeds {\n  A: number;\n  b: number;\n  C: number;\n  E?: number;\n  tagged: Basic2;\n  other: Inner2;\n  D: number;\n  Key: Key;\n}\n" +
				"export interface Inner2 {\n  A: number;\n}\n" +
				"export type Key = string;\n"},
		{"dominance", reflect.TypeFor[Conflicts](), "Conflicts",
			"export interface Conflicts {\n  Y: number;\n  Z: number;\n}\n"},
		{"methods, time, raw, override", reflect.TypeFor[Special](), "Special",
			"export interface Special {\n  T: string;\n  Raw: unknown;\n  M: unknown;\n  PM: unknown;\n  Tx: string;\n  Addr: string;\n  Ov: 'x' | 'y';\n}\n"},
		{"marshaler payload", reflect.TypeFor[Marsh](), "unknown", ""},
		{"text marshaler pointer", reflect.TypeFor[*Text](), "string | null", ""},
		{"recursive", reflect.TypeFor[Tree](), "Tree",
			"export interface Tree {\n  Name: string;\n  Children: Tree[] | null;\n  Parent: Tree | null;\n}\n"},
		{"generic", reflect.TypeFor[Page[Basic2]](), "Page_Basic2",
			"export interface Basic2 {\n  X: number;\n}\n" +
				"export interface Page_Basic2 {\n  Items: Basic2[] | null;\n  Next: string;\n}\n"},
		{"generic, two arguments", reflect.TypeFor[Pair[string, []int]](), "Pair_string_int",
			"export interface Pair_string_int {\n  K: string;\n  V: number[] | null;\n}\n"},
		{"named non-structs", reflect.TypeFor[Named](), "Named",
			"export type Color = string;\n" +
				"export type IDs = number[];\n" +
				"export interface Named {\n  C: Color;\n  IDs: IDs | null;\n  Opt?: IDs;\n}\n"},
		{"named slice payload", reflect.TypeFor[IDs](), "IDs | null", "export type IDs = number[];\n"},
		{"same name, two packages", reflect.TypeFor[Collide](), "Collide",
			"export interface Collide {\n  Mine: Point;\n  Image: image_Point;\n}\n" +
				"export interface Point {\n  Name: string;\n}\n" +
				"export interface image_Point {\n  X: number;\n  Y: number;\n}\n"},
		{"doc comments", reflect.TypeFor[Documented](), "Documented",
			"/**\n * Documented says what it is.\n * On two lines; no *\\/ breaks out.\n */\n" +
				"export interface Documented {\n  /** A is documented. */\n  A: number;\n  /** B has a line comment. */\n  b: string;\n}\n"},
		{"empty struct", reflect.TypeFor[Empty](), "Empty", "export interface Empty { [key: string]: never }\n"},
		{"reserved name", reflect.TypeFor[Record](), "tsgen_Record",
			"export interface tsgen_Record {\n  Next: { [key: string]: tsgen_Record | null } | null;\n}\n"},
		{"recursive map", reflect.TypeFor[JSONMap](), "JSONMap | null",
			"export type JSONMap = { [key: string]: JSONMap | null };\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg config
			WithDocs(docs).apply(&cfg)
			override.apply(&cfg)
			g := newGen(cfg)
			got, err := g.top(tc.typ)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if decls := declsOf(g); decls != tc.decls {
				t.Errorf("declarations:\n%s\nwant:\n%s", decls, tc.decls)
			}
		})
	}
}

// declsOf returns g's declarations as Generate writes them, without the
// blank lines between them.
func declsOf(g *gen) string {
	var buf bytes.Buffer
	g.writeDecls(&buf)
	return strings.ReplaceAll(strings.TrimPrefix(buf.String(), "\n"), "\n\n", "\n")
}

func TestUnsupported(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  reflect.Type
		want string
	}{
		{"channel", reflect.TypeFor[chan int](), "unsupported type chan int"},
		{"func field", reflect.TypeFor[struct{ F func() }](), "unsupported type func()"},
		{"complex", reflect.TypeFor[[]complex128](), "unsupported type complex128"},
		{"map key", reflect.TypeFor[map[Basic2]int](), "unsupported map key type tsgen.Basic2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Generate([]Entry{{Name: "a", Publish: true, Type: tc.typ}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
