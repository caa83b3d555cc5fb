package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// scanSeeds are message frames and near misses.
var scanSeeds = []string{
	`{"op":"message","sub":"s1","topic":"bench.broadcast","data":{"bk":12,"text":"hello, world"}}`,
	`{"op":"message","sub":"s1","n":7,"attempt":2,"topic":"chat.lobby","epoch":"1844674407370955","seq":42,` +
		`"rooms":["a","b"],"headers":{"courier-session":"u0N8","courier-user":"alice"},"data":{"text": "hi", "x": [1, 2.5e3, -0, true, null]}}`,
	` { "op" : "message" , "sub" : "s" , "data" : "caf\u00e9" , "epoch" : 5 } `,
	`{"op":"message","sub":"s","rooms":[],"headers":{},"data":null}`,
	`{"op":"message","sub":"s","rooms":["a"],"rooms":null,"headers":{"a":"1"},"headers":{"b":"2"}}`,
	`{"op":"message","sub":"s","epoch":null,"n":null,"data":[]}`,
	`{"op":"message","sub":"s\u0031","data":1}`,           // escape: Parse
	`{"op":"message","sub":"é","topic":"ü","data":1}`,     // UTF-8: fast
	`{"op":"message","sub":"s","data64":"AAE="}`,          // data64: Parse
	`{"op":"message","Sub":"s","data":1}`,                 // another case: Parse
	`{"op":"message","sub":"s","n":1.5}`,                  // not a uint: Parse fails
	`{"op":"message","sub":"s","n":18446744073709551616}`, // overflow
	`{"op":"message","sub":"s","n":-1}`,
	`{"op":"message","sub":"s","epoch":"007"}`,
	`{"op":"pong","id":"1"}`,
	`{"op":"message","sub":"s","data":{"a":1}}x`,
	`{"op":"message","sub":"s","data":{"a":1}`,
	`{"op":"message","sub":"s","data":"\x01"}`,
	`{"op":"message","sub":"s","data":"\ud800"}`,
	`[{"op":"message","sub":"s","data":1}, {"op":"ok","id":"2"} ,{"op":"message","sub":"t","data":[{}]}]`,
	`[]`, ` [ ] `, `[1,]`, `[1 2]`, `[{"op":"x"}]]`, `["\u12"]`, `[tru]`, `[-]`, `[0.]`, `[1e]`, `[01]`,
}

// TestScanMessage checks that the scanner reads message frames as Parse
// does, and leaves to Parse what it does not read.
func TestScanMessage(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		fast bool
	}{
		{scanSeeds[0], true},
		{scanSeeds[1], true},
		{scanSeeds[2], true},
		{scanSeeds[3], true},
		{scanSeeds[4], true},
		{scanSeeds[5], true},
		{scanSeeds[6], false},
		{scanSeeds[7], true},
		{scanSeeds[8], false},
		{scanSeeds[9], false},
		{scanSeeds[10], false},
		{scanSeeds[11], false},
		{scanSeeds[12], false},
		{scanSeeds[13], false},
		{scanSeeds[14], false},
		{scanSeeds[15], false},
		{scanSeeds[16], false},
	} {
		var d Decoder
		var f Frame
		raw := []byte(tc.raw)
		end, ok := d.message(raw, skipSpace(raw, 0), &f)
		if got := ok && skipSpace(raw, end) == len(raw); got != tc.fast {
			t.Errorf("message(%s) = %v, want %v", tc.raw, got, tc.fast)
			continue
		}
		if tc.fast {
			checkSame(t, []byte(tc.raw), f)
		}
	}
}

// checkSame checks that f, from the scanner, is what Parse makes of raw,
// but for Data, which Parse compacts.
func checkSame(t *testing.T, raw []byte, f Frame) {
	t.Helper()
	want, err := Parse(raw)
	if err != nil {
		t.Fatalf("ParseMessage read %s, Parse refused it: %v", raw, err)
	}
	if !bytes.Equal(compact(f.Data), want.Data) {
		t.Fatalf("%s: data %s, want %s", raw, f.Data, want.Data)
	}
	f.Data, want.Data = nil, nil
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", raw, f, want)
	}
}

// jsonSplit is Split as encoding/json does it.
func jsonSplit(msg []byte) ([][]byte, bool) {
	var raws []json.RawMessage
	if err := json.Unmarshal(msg, &raws); err != nil {
		return nil, false
	}
	out := make([][]byte, len(raws))
	for i, r := range raws {
		out[i] = r
	}
	return out, true
}

// FuzzScan checks the scanner against encoding/json: skipValue agrees with
// json.Valid, Split of an array with json.Unmarshal, and Decode with Split
// and Parse.
func FuzzScan(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		i := skipSpace(msg, 0)
		end := skipValue(msg, i, 0)
		valid := end >= 0 && skipSpace(msg, end) == len(msg)
		if valid != json.Valid(msg) {
			t.Fatalf("skipValue says valid %v for %q, json.Valid %v", valid, msg, !valid)
		}
		if i < len(msg) && msg[i] == '[' {
			got, ok := splitArray(msg, i)
			want, wok := jsonSplit(msg)
			if ok != wok || ok && !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
				t.Fatalf("splitArray(%q) = %q %v, encoding/json %q %v", msg, got, ok, want, wok)
			}
		}
		// Decode makes the frames that Split and Parse make.
		var want []Frame
		raws, werr := Split(msg)
		for _, raw := range raws {
			if f, err := Parse(raw); err == nil {
				want = append(want, f)
			}
		}
		var d Decoder
		got, err := d.Decode(msg, make([]Frame, 3))
		if (err == nil) != (werr == nil) || len(got) != len(want) {
			t.Fatalf("Decode(%q) = %d frames, %v; Split and Parse: %d, %v", msg, len(got), err, len(want), werr)
		}
		for i := range got {
			if got[i].Op == OpMessage {
				got[i].Data = compact(got[i].Data)
			}
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("Decode(%q) frame %d:\n got %+v\nwant %+v", msg, i, got[i], want[i])
			}
		}
	})
}
