// Package tsgen writes TypeScript declarations for the payloads of a
// bridge's topics, from their Go types: what a browser sees of a topic is
// what encoding/json makes of its Go value, so the declarations follow
// encoding/json's rules, type by type.
//
// [Generate] takes the exposed names — topics and patterns, with the
// actions clients may take on each and their Go types — and returns a
// .d.ts module that declares one named TypeScript type per named Go type
// and the interface Topics, which maps each name to its payload per action.
// The browser client's declarations (courier.d.ts) are generic over it:
//
//	import { connect } from './bus/client.js';
//	import type { Topics } from './bus/topics.js';
//	const bus = connect<Topics>('/bus/');
//	bus.subscribe('chat.lobby', (m) => m.text); // m: ChatMessage
//
// The bridge serves the result at "<mount>topics.d.ts" (see
// [github.com/courierbus/courier/bridge.Bridge.TypeScript]) and the command
// courier-ts writes it into a front-end tree.
//
// # Mapping
//
//   - bool is boolean; integers and floats are number (int64 and uint64
//     lose precision past 2^53 in JavaScript, as with any JSON); string is
//     string. The ",string" tag option makes a number, bool or string
//     field a string.
//   - A pointer is its element's type "| null"; so are a slice and a map,
//     whose nil is null. A member that "omitempty" or "omitzero" leaves out
//     when nil is optional instead ("name?: T").
//   - Slices and arrays are arrays; arrays of up to 8 elements are
//     tuples. []byte is a string (base64), [N]byte an array of numbers.
//   - Maps are { [key: string]: V }: encoding/json writes string, integer and
//     encoding.TextMarshaler keys as strings; other key types are an
//     error, as they are for encoding/json.
//   - Structs follow encoding/json's field rules: exported fields only,
//     names from json tags, "-" leaves a field out, embedded structs
//     (and pointers to them) lend their fields with Go's dominance rules,
//     an embedded struct with a tag name is a member. "omitempty" makes
//     a member optional unless it is a struct (never omitted), "omitzero"
//     makes any member optional. Fields of an embedded pointer are
//     optional: a nil pointer leaves them out.
//   - time.Time is string; json.RawMessage and interfaces are unknown.
//     Other types with a MarshalJSON method are unknown and types with a
//     MarshalText method are string, unless an [Override] says otherwise.
//     A method on the pointer counts, as encoding/json calls it on
//     addressable values.
//   - Named Go types become named TypeScript types (an interface for a
//     struct, a type alias for the rest), so recursive types work; an
//     instantiated generic type is named after the type and its type
//     arguments (Page[Item] is Page_Item). A name two packages share, and
//     a name TypeScript or the declarations use already (Topics, Record,
//     Date, object, class...), takes the package's name as a prefix.
//   - Channels, functions and complex numbers are an error, as they are
//     for encoding/json.
//   - Doc comments of types and fields carry over as /** */ comments when
//     the source is given ([ParseDocs], [WithDocs]).
//
// Exposed patterns become template literal index signatures: "chat.*" and
// "chat.>" are both `chat.${string}`, which also matches names with more
// dots than the pattern would. An exact topic's own type wins over its
// pattern's.
package tsgen
