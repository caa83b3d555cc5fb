package wire

import (
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary messages to the decoder: it must not panic,
// and every frame it accepts must encode and decode to an equal frame.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"op":"hello","v":1,"id":"h","auth":{"token":"x"},"resume":"abc.def"}`,
		`[{"op":"subscribe","id":"1","sub":"s1","pattern":"chat.>","start":"after","epoch":"123","seq":4},{"op":"ping"}]`,
		`{"op":"publish","id":"2","topic":"a.b","data":[1, 2 ,{"x":null}],"to":["r"],"except":[],"except_self":true,"pid":"p","headers":{"k":"v"}}`,
		`{"op":"ack","sub":"s1","upto":18446744073709551615}`,
		`{"op":"message","sub":"s","n":1,"topic":"t","epoch":"1","seq":1,"data":"\u2028","data64":"AAE="}`,
		`{"op":"presence","room":"lobby","watch":false,"members":[{"member":"m","user":"u"}]}`,
		`{"op":"welcome","resumed":true,"subs":[{"sub":"s","pattern":"p","recovered":false}],"limits":{"frame":1}}`,
		`{"op":"error","code":"bad_json","message":"\ud800"}`,
		`{"OP":"ping","Id":"x","headers":{}}`,
		`[]`, `[1,2]`, `{"op":5}`, `{"op":"x","epoch":-1}`, `nul`, "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		raws, err := Split(msg)
		if err != nil {
			return
		}
		for _, raw := range raws {
			PeekID(raw)
			f1, err := Parse(raw)
			if err != nil {
				continue
			}
			enc, err := Encode(&f1)
			if err != nil {
				t.Fatalf("encode %+v: %v", f1, err)
			}
			f2, err := Parse(enc)
			if err != nil {
				t.Fatalf("decode of encoded %s: %v", enc, err)
			}
			if !reflect.DeepEqual(f1, f2) {
				t.Fatalf("round trip differs:\n%+v\n%+v\n%s", f1, f2, enc)
			}
		}
	})
}
