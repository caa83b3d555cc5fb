package wire

import (
	"bytes"
	"unicode/utf8"
)

// A scanner for the frames the server sends most: message frames. Decoding
// them with encoding/json cost a client 2-3µs and a dozen allocations per
// frame; Decoder reads their members in one pass, keeps "data" as a slice
// of the message, and leaves anything unusual to Parse. Split uses the
// scanner to find the frames of an array.

// maxDepth bounds the nesting of a value skipped by skipValue (as
// encoding/json's limit does); deeper values are left to encoding/json.
const maxDepth = 10000

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue returns the index just past the JSON value that starts at
// b[i], or -1 when there is no valid value there.
func skipValue(b []byte, i, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{':
		if depth >= maxDepth {
			return -1
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return -1
			}
			if i = skipString(b, i); i < 0 {
				return -1
			}
			i = skipSpace(b, i)
			if i >= len(b) || b[i] != ':' {
				return -1
			}
			if i = skipValue(b, skipSpace(b, i+1), depth+1); i < 0 {
				return -1
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return -1
			}
			if b[i] == '}' {
				return i + 1
			}
			if b[i] != ',' {
				return -1
			}
			i = skipSpace(b, i+1)
		}
	case c == '[':
		if depth >= maxDepth {
			return -1
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1
		}
		for {
			if i = skipValue(b, i, depth+1); i < 0 {
				return -1
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return -1
			}
			if b[i] == ']' {
				return i + 1
			}
			if b[i] != ',' {
				return -1
			}
			i = skipSpace(b, i+1)
		}
	case c == '-' || c >= '0' && c <= '9':
		return skipNumber(b, i)
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	}
	return -1
}

func skipLiteral(b []byte, i int, lit string) int {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit)
	}
	return -1
}

// skipString returns the index just past the JSON string at b[i] (a '"').
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i <= 4 {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// skipNumber returns the index just past the JSON number at b[i].
func skipNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return -1
		}
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return -1
		}
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	}
	return i
}

// splitArray returns the elements of the JSON array msg[i:] (msg[i] is
// '['), each a slice of msg; ok is false when msg is not exactly one valid
// array.
func splitArray(msg []byte, i int) (out [][]byte, ok bool) {
	i = skipSpace(msg, i+1)
	if i < len(msg) && msg[i] == ']' {
		return [][]byte{}, skipSpace(msg, i+1) == len(msg)
	}
	out = make([][]byte, 0, 8)
	for {
		j := skipValue(msg, i, 1)
		if j < 0 {
			return nil, false
		}
		out = append(out, msg[i:j])
		i = skipSpace(msg, j)
		if i >= len(msg) {
			return nil, false
		}
		if msg[i] == ']' {
			if skipSpace(msg, i+1) != len(msg) {
				return nil, false
			}
			return out, true
		}
		if msg[i] != ',' {
			return nil, false
		}
		i = skipSpace(msg, i+1)
	}
}

// Decoder decodes the messages a client reads. It remembers the last
// subscription id, topic and publisher headers it decoded, so that a run
// of messages shares those strings instead of allocating them again. It
// is not safe for concurrent use: one per connection's reader.
type Decoder struct {
	sub, topic, session, user string
}

// Decode appends to out[:0] the frames of one WebSocket message that
// decode, leaving out those that do not, as Split and then Parse of each
// frame would. Message frames are read in one pass by a scanner of their
// own, without encoding/json: their Data are slices of msg, not compacted.
// Other frames, and message frames with members it does not read (or
// strings with escapes), go to Parse. The error is Split's, for a message
// that is not a JSON object or array.
func (d *Decoder) Decode(msg []byte, out []Frame) ([]Frame, error) {
	out = out[:0]
	i := skipSpace(msg, 0)
	if i < len(msg) {
		switch msg[i] {
		case '{':
			if end, ok := d.frame(msg, i, &out); ok && skipSpace(msg, end) == len(msg) {
				return out, nil
			}
		case '[':
			if d.array(msg, i, &out) {
				return out, nil
			}
		}
	}
	// Not well-formed JSON: what encoding/json makes of it.
	out = out[:0]
	raws, err := Split(msg)
	if err != nil {
		return out, err
	}
	for _, raw := range raws {
		if f, err := Parse(raw); err == nil {
			out = append(out, f)
		}
	}
	return out, nil
}

// array decodes the frames of the JSON array at msg[i]; false when msg is
// not exactly one valid JSON array.
func (d *Decoder) array(msg []byte, i int, out *[]Frame) bool {
	i = skipSpace(msg, i+1)
	if i < len(msg) && msg[i] == ']' {
		return skipSpace(msg, i+1) == len(msg)
	}
	for {
		end, ok := d.frame(msg, i, out)
		if !ok {
			return false
		}
		i = skipSpace(msg, end)
		if i >= len(msg) {
			return false
		}
		if msg[i] == ']' {
			return skipSpace(msg, i+1) == len(msg)
		}
		if msg[i] != ',' {
			return false
		}
		i = skipSpace(msg, i+1)
	}
}

// frame decodes the JSON value at msg[i] and appends it to *out if it is a
// frame that decodes. It returns the index past the value; false when
// there is no valid JSON value at i.
func (d *Decoder) frame(msg []byte, i int, out *[]Frame) (int, bool) {
	n := len(*out)
	*out = append(*out, Frame{})
	f := &(*out)[n]
	if end, ok := d.message(msg, i, f); ok {
		return end, true
	}
	end := skipValue(msg, i, 1)
	if end < 0 {
		*out = (*out)[:n]
		return -1, false
	}
	pf, err := Parse(msg[i:end])
	if err != nil {
		*out = (*out)[:n]
	} else {
		*f = pf
	}
	return end, true
}

// message decodes the message frame at msg[i] into f and returns the
// index past it. It reports false when the value there is not a message
// frame it reads by itself: members in their usual types, strings without
// escapes, no member but op, sub, n, attempt, topic, epoch, seq, rooms,
// headers and data (members a later revision adds go to Parse). f is then
// in an unspecified state. Empty rooms and headers are nil, as from Parse.
func (d *Decoder) message(msg []byte, i int, f *Frame) (int, bool) {
	*f = Frame{}
	if i >= len(msg) || msg[i] != '{' {
		return -1, false
	}
	i = skipSpace(msg, i+1)
	for {
		if i >= len(msg) || msg[i] != '"' {
			return -1, false // "}" too: no op
		}
		k := skipString(msg, i)
		if k < 0 {
			return -1, false
		}
		key := msg[i+1 : k-1]
		i = skipSpace(msg, k)
		if i >= len(msg) || msg[i] != ':' {
			return -1, false
		}
		i = skipSpace(msg, i+1)
		end := skipValue(msg, i, 1)
		if end < 0 {
			return -1, false
		}
		v := msg[i:end]
		null := string(v) == "null"
		switch string(key) {
		case "op":
			if string(v) != `"message"` {
				return -1, false
			}
			f.Op = OpMessage
		case "sub":
			if !null && !intern(v, &d.sub, &f.Sub) {
				return -1, false
			}
		case "topic":
			if !null && !intern(v, &d.topic, &f.Topic) {
				return -1, false
			}
		case "n":
			if !null && !parseUint(v, &f.N) {
				return -1, false
			}
		case "seq":
			if !null && !parseUint(v, &f.Seq) {
				return -1, false
			}
		case "attempt":
			var n uint64
			if !null && (!parseUint(v, &n) || n > 1<<31-1) {
				return -1, false
			}
			f.Attempt = int(n)
		case "epoch":
			if len(v) >= 2 && v[0] == '"' {
				v = v[1 : len(v)-1]
			}
			var e uint64
			if !null && !parseUint(v, &e) {
				return -1, false
			}
			f.Epoch = Epoch(e)
		case "rooms": // as encoding/json: null is nil, an array replaces
			f.Rooms = f.Rooms[:0]
			if null {
				f.Rooms = nil
			} else if !parseStrings(v, &f.Rooms) {
				return -1, false
			}
		case "headers": // as encoding/json: null is nil, an object adds
			if null {
				f.Headers = nil
			} else if !d.parseHeaders(v, &f.Headers) {
				return -1, false
			}
		case "data":
			f.Data = v
		default:
			return -1, false
		}
		i = skipSpace(msg, end)
		if i >= len(msg) {
			return -1, false
		}
		if msg[i] == '}' {
			break
		}
		if msg[i] != ',' {
			return -1, false
		}
		i = skipSpace(msg, i+1)
	}
	if f.Op != OpMessage {
		return -1, false
	}
	if len(f.Rooms) == 0 {
		f.Rooms = nil
	}
	if len(f.Headers) == 0 {
		f.Headers = nil
	}
	return i + 1, true
}

// intern sets *dst to the plain JSON string v, reusing *last when it is
// the same.
func intern(v []byte, last, dst *string) bool {
	s, ok := plainString(v)
	if !ok {
		return false
	}
	if string(s) != *last {
		*last = string(s)
	}
	*dst = *last
	return true
}

// plainString returns the contents of the JSON string v when it has no
// escapes and is valid UTF-8 (what encoding/json would decode unchanged).
func plainString(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' {
		return nil, false
	}
	s := v[1 : len(v)-1]
	for _, c := range s {
		if c == '\\' || c >= utf8.RuneSelf {
			return s, bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s)
		}
	}
	return s, true
}

// parseUint reads a JSON number that is a decimal uint64 without sign,
// fraction or exponent.
func parseUint(v []byte, n *uint64) bool {
	if len(v) == 0 || len(v) > 20 || len(v) > 1 && v[0] == '0' {
		return false
	}
	var x uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
		d := uint64(c - '0')
		if x > (1<<64-1-d)/10 {
			return false
		}
		x = x*10 + d
	}
	*n = x
	return true
}

// parseStrings appends the plain strings of v, a valid JSON array of
// them, to out.
func parseStrings(v []byte, out *[]string) bool {
	if v[0] != '[' {
		return false
	}
	i := skipSpace(v, 1)
	if v[i] == ']' {
		return true
	}
	for {
		if v[i] != '"' {
			return false
		}
		j := skipString(v, i)
		s, ok := plainString(v[i:j])
		if !ok {
			return false
		}
		*out = append(*out, string(s))
		i = skipSpace(v, j)
		if v[i] == ']' {
			return true
		}
		if v[i] != ',' {
			return false
		}
		i = skipSpace(v, i+1)
	}
}

// parseHeaders adds the members of v, a valid JSON object of plain
// strings, to out. The bridge's publisher headers share their strings.
func (d *Decoder) parseHeaders(v []byte, out *map[string]string) bool {
	if v[0] != '{' {
		return false
	}
	i := skipSpace(v, 1)
	if v[i] == '}' {
		return true
	}
	for {
		if v[i] != '"' {
			return false
		}
		j := skipString(v, i)
		k, ok := plainString(v[i:j])
		if !ok {
			return false
		}
		i = skipSpace(v, j) // at ':', as skipValue checked
		i = skipSpace(v, i+1)
		if v[i] != '"' {
			return false
		}
		j = skipString(v, i)
		if *out == nil {
			*out = make(map[string]string, 2)
		}
		switch string(k) {
		case HeaderSession:
			if !intern(v[i:j], &d.session, &d.session) {
				return false
			}
			(*out)[HeaderSession] = d.session
		case HeaderUser:
			if !intern(v[i:j], &d.user, &d.user) {
				return false
			}
			(*out)[HeaderUser] = d.user
		default:
			s, ok := plainString(v[i:j])
			if !ok {
				return false
			}
			(*out)[string(k)] = string(s)
		}
		i = skipSpace(v, j)
		if v[i] == '}' {
			return true
		}
		i = skipSpace(v, i+1) // past ','
	}
}
