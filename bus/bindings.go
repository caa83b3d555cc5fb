package bus

import (
	"reflect"
	"slices"
	"strings"
)

// Binding is a name bound to Go types by [NewTopic] or [NewEndpoint], as
// [Bus.Bindings] lists it. Tools that describe a bus to other languages
// (the bridge's TypeScript declarations) read it.
type Binding struct {
	// Name is the topic's or endpoint's name.
	Name string
	// Endpoint is true for a name bound by NewEndpoint, false for a topic.
	Endpoint bool
	// Type is the topic's value type, or the endpoint's request type.
	Type reflect.Type
	// Reply is the endpoint's reply type; nil for a topic.
	Reply reflect.Type
	// Codec is the topic's codec ([JSON] unless [WithCodec] said
	// otherwise); nil for an endpoint, whose values are JSON on the wire.
	Codec Codec
}

// Bindings returns every topic and endpoint bound to Go types, sorted by
// name (a topic before an endpoint of the same name). Topics that were
// only published to raw, and the bus's own '$' topics, are not listed. It
// is safe for concurrent use; the list is a snapshot.
func (b *Bus) Bindings() []Binding {
	var out []Binding
	b.mu.RLock()
	for name, ts := range b.topics {
		if bd := ts.bind.Load(); bd != nil && !reserved(name) {
			out = append(out, Binding{Name: name, Type: bd.typ, Codec: bd.codec})
		}
	}
	for name, set := range b.endpoints {
		out = append(out, Binding{Name: name, Endpoint: true, Type: set.types[0], Reply: set.types[1]})
	}
	b.mu.RUnlock()
	slices.SortFunc(out, func(x, y Binding) int {
		if c := strings.Compare(x.Name, y.Name); c != 0 {
			return c
		}
		switch {
		case x.Endpoint == y.Endpoint:
			return 0
		case y.Endpoint:
			return -1
		}
		return 1
	})
	return out
}
