package bus

import "encoding/json"

// Codec turns a topic's values into bytes and back. Implementations must be
// safe for concurrent use.
type Codec interface {
	// Encode returns the bytes of v, which holds a value of the topic's type.
	Encode(v any) ([]byte, error)
	// Decode fills *ptr, a pointer to the topic's type, from data.
	Decode(data []byte, ptr any) error
}

// JSON is the default [Codec]: encoding/json.
var JSON Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) Encode(v any) ([]byte, error) {
	if r, ok := v.(json.RawMessage); ok {
		if r == nil {
			return []byte("null"), nil // as encoding/json encodes a nil RawMessage
		}
		if !json.Valid(r) {
			return nil, &json.SyntaxError{}
		}
		return r, nil
	}
	return json.Marshal(v)
}

func (jsonCodec) Decode(data []byte, ptr any) error { return json.Unmarshal(data, ptr) }
