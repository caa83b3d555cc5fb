package bridge

import (
	"bytes"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/courierbus/courier/bridge/tsgen"
	"github.com/courierbus/courier/bus"
)

// TypeScript returns the TypeScript declarations of what the bridge
// exposes, which it also serves at "<mount>topics.d.ts": the interface
// Topics maps every exposed topic and pattern to its payload type, for each
// action clients may take on it (subscribe, publish, request; the
// Authorize hook may refuse more), and declares the named types they use.
// The browser client's declarations, served at "<mount>client.d.ts", are
// generic over it: connect<Topics>(url).
//
// Types come from the bus: every topic bound by [bus.NewTopic] (with the
// JSON codec) and endpoint bound by [bus.NewEndpoint] whose name an
// exposure matches is declared by its exact name, with its Go types. An
// exposed pattern is declared with the type [ExposeTyped] gave it, or
// unknown. So the declarations list the bindings made before they are
// asked for; bind typed topics before serving. The names of the bound
// topics matched by exposed patterns are thus visible to anyone who can
// fetch the declarations, as the client's module is.
//
// The mapping follows encoding/json (see package tsgen); doc comments are
// carried over when [TypeScriptOptions] gives the source. An error names a
// payload type encoding/json cannot encode. It is safe for concurrent use.
func (b *Bridge) TypeScript() ([]byte, error) {
	return tsgen.Generate(b.tsEntries(), b.cfg.tsOpts...)
}

// tsEntries lists what the bridge exposes with the best type known for
// each name and action: a binding's own type, then ExposeTyped's, then
// none.
func (b *Bridge) tsEntries() []tsgen.Entry {
	type key struct {
		name   string
		action Action
	}
	type typed struct {
		typ, reply reflect.Type
		bound      bool
	}
	found := map[key]typed{}
	set := func(k key, t typed) {
		if cur, ok := found[k]; ok && (cur.bound || cur.typ != nil && !t.bound) {
			return
		}
		found[k] = t
	}
	bindings := b.bus.Bindings()
	for _, e := range b.cfg.topics {
		for _, a := range e.actions {
			set(key{e.pattern, a}, typed{typ: e.typ})
			for _, bd := range bindings {
				name, ok := strings.CutPrefix(bd.Name, b.ns)
				if !ok || !bus.Match(e.pattern, name) || bd.Endpoint != (a == Request) {
					continue
				}
				t := typed{typ: bd.Type, reply: bd.Reply, bound: true}
				if !bd.Endpoint && bd.Codec != bus.JSON {
					t.typ = nil // not JSON on the wire
				}
				set(key{name, a}, t)
			}
		}
	}
	out := make([]tsgen.Entry, 0, len(found))
	for k, t := range found {
		out = append(out, tsgen.Entry{Name: k.name, Subscribe: k.action == Subscribe, Publish: k.action == Publish,
			Request: k.action == Request, Type: t.typ, Reply: t.reply})
	}
	slices.SortFunc(out, func(x, y tsgen.Entry) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// serveTypes serves the declarations of TypeScript.
func (b *Bridge) serveTypes(w http.ResponseWriter, r *http.Request) {
	data, err := b.TypeScript()
	if err != nil {
		b.log.Error("bridge: topics.d.ts", "err", err)
		http.Error(w, "bridge: "+err.Error(), http.StatusInternalServerError)
		return
	}
	serveTS(w, r, "topics.d.ts", data)
}

func serveTS(w http.ResponseWriter, r *http.Request, name string, data []byte) {
	w.Header().Set("Content-Type", "application/typescript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
}
