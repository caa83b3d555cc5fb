package wire

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		n    int
		code string
	}{
		{"object", `{"op":"ping"}`, 1, ""},
		{"array", `[{"op":"ping"},{"op":"pong"}]`, 2, ""},
		{"empty array", `[]`, 0, ""},
		{"spaces", " \n[ {\"op\":\"ping\"} ]", 1, ""},
		{"number", `5`, 0, CodeBadJSON},
		{"broken array", `[{"op":"ping"},`, 0, CodeBadJSON},
		{"empty", ``, 0, CodeBadJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Split([]byte(tc.in))
			var we *Error
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("got error %v, want none", err)
			case tc.code != "" && (!errors.As(err, &we) || we.Code != tc.code):
				t.Fatalf("got error %v, want code %s", err, tc.code)
			case len(got) != tc.n:
				t.Fatalf("got %d frames, want %d", len(got), tc.n)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		code string
		id   string
	}{
		{"ok", `{"op":"publish","id":"1","topic":"a","data":{"x" : 1}}`, "", ""},
		{"no op", `{"id":"7"}`, CodeBadFrame, "7"},
		{"wrong type", `{"op":"subscribe","id":"8","seq":"x"}`, CodeBadFrame, "8"},
		{"bad json", `{"op":"ping",}`, CodeBadJSON, ""},
		{"not object", `"ping"`, CodeBadJSON, ""},
		{"epoch string", `{"op":"subscribe","epoch":"18446744073709551615"}`, "", ""},
		{"epoch number", `{"op":"subscribe","epoch":12}`, "", ""},
		{"epoch bad", `{"op":"subscribe","id":"9","epoch":"-1"}`, CodeBadFrame, "9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			var we *Error
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("got error %v, want none", err)
			case tc.code != "" && (!errors.As(err, &we) || we.Code != tc.code || we.ID != tc.id):
				t.Fatalf("got error %#v, want code %s id %q", err, tc.code, tc.id)
			}
		})
	}
}

// TestMessageFrame checks that the hand-written message encoder produces
// what encoding/json decodes to the same frame.
func TestMessageFrame(t *testing.T) {
	sub := AppendString(nil, "s\"1")
	tail := MessageTail("chat.a", 1<<63+5, 42, []string{"r1", "r\u2028"}, map[string]string{"k": "v\n", "a": "\x01"}, []byte(`{"t" : "hi"}`))
	frame := append(AppendMessageHead(nil, sub, 7, 2), tail...)
	f, err := Parse(frame)
	if err != nil {
		t.Fatalf("parse %s: %v", frame, err)
	}
	want := Frame{
		Op: OpMessage, Sub: "s\"1", N: 7, Attempt: 2, Topic: "chat.a", Epoch: 1<<63 + 5, Seq: 42,
		Rooms: []string{"r1", "r\u2028"}, Headers: map[string]string{"k": "v\n", "a": "\x01"},
		Data: json.RawMessage(`{"t":"hi"}`), // compacted by Parse
	}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("got %+v, want %+v", f, want)
	}
	// Not JSON: base64 in data64.
	tail = MessageTail("b", 1, 1, nil, nil, []byte{0xff, 0})
	f, err = Parse(append(AppendMessageHead(nil, sub, 0, 1), tail...))
	if err != nil || string(f.Data64) != "\xff\x00" || f.Data != nil || f.N != 0 {
		t.Fatalf("got %+v, %v", f, err)
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"b\\", "\x00\x1f\t\r\n", "é😀", "bad\xffutf8", "\u2028\u2029"} {
		var got string
		if err := json.Unmarshal(AppendString(nil, s), &got); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		want, _ := json.Marshal(s)
		var w string
		json.Unmarshal(want, &w)
		if got != w {
			t.Fatalf("got %q, want %q", got, w)
		}
	}
}

func BenchmarkMessageFrame(b *testing.B) {
	sub := AppendString(nil, "s1")
	data := []byte(`{"user":"alice","text":"hello, world","at":1700000000}`)
	b.Run("tail", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			MessageTail("chat.room42", 1<<60, 123456, nil, nil, data)
		}
	})
	tail := MessageTail("chat.room42", 1<<60, 123456, nil, nil, data)
	b.Run("head", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf = AppendMessageHead(buf[:0], sub, 99, 1)
			buf = append(buf, tail...)
		}
	})
}

func TestCodeIndex(t *testing.T) {
	codes := Codes()
	if len(codes) != NumCodes {
		t.Fatalf("got %d codes, want NumCodes %d", len(codes), NumCodes)
	}
	for i, c := range codes {
		if got := CodeIndex(c); got != i {
			t.Errorf("CodeIndex(%q) = %d, want %d", c, got, i)
		}
	}
	if got := CodeIndex("no_such_code"); got != -1 {
		t.Errorf("CodeIndex of an unknown code = %d, want -1", got)
	}
}
