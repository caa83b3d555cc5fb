package persist

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/courierbus/courier/bus"
)

func sampleRecords() []bus.Record {
	return []bus.Record{
		{},
		{Time: time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC), Data: []byte("x")},
		{
			Time:         time.Unix(-1, 5).UTC(),
			PublisherID:  "pub-1",
			Headers:      map[string]string{"k": "v", "trace": ""},
			To:           []string{"r1", "r2"},
			Except:       []string{"r3"},
			ExceptMember: "alice",
			Data:         []byte(`{"text":"hi"}`),
		},
		{Time: time.Now().UTC(), Data: []byte(strings.Repeat("z", 300))},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for i, in := range sampleRecords() {
		enc := appendRecord(nil, &in)
		if len(enc) != recordSize(&in) {
			t.Errorf("record %d: recordSize = %d, encoding has %d bytes", i, recordSize(&in), len(enc))
		}
		var got bus.Record
		if err := decodeRecord(enc, &got); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !got.Time.Equal(in.Time) || got.PublisherID != in.PublisherID || got.ExceptMember != in.ExceptMember ||
			string(got.Data) != string(in.Data) || !reflect.DeepEqual(got.To, in.To) ||
			!reflect.DeepEqual(got.Except, in.Except) || len(got.Headers) != len(in.Headers) {
			t.Errorf("record %d: got %+v, want %+v", i, got, in)
		}
		for k, v := range in.Headers {
			if got.Headers[k] != v {
				t.Errorf("record %d: header %q = %q, want %q", i, k, got.Headers[k], v)
			}
		}
		if tm, err := decodeRecordTime(enc); err != nil || !tm.Equal(in.Time) {
			t.Errorf("record %d: decodeRecordTime = %v, %v; want %v", i, tm, err, in.Time)
		}
	}
}

func TestDecodeBadRecords(t *testing.T) {
	good := appendRecord(nil, &sampleRecords()[2])
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"garbage", []byte("garbage")},
		{"unknown version", append([]byte{9}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(good[:len(good):len(good)], 0)},
		{"huge count", []byte{recordV1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"nanoseconds out of range", []byte{recordV1, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03, 0, 0, 0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r bus.Record
			if err := decodeRecord(tc.in, &r); err == nil {
				t.Fatalf("decodeRecord(%q) = nil error, want one", tc.in)
			}
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range sampleRecords() {
		f.Add(appendRecord(nil, &r))
	}
	f.Add([]byte("garbage"))
	f.Add([]byte{recordV1})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var r bus.Record
		if err := decodeRecord(raw, &r); err != nil {
			return
		}
		enc := appendRecord(nil, &r)
		if len(enc) != recordSize(&r) {
			t.Fatalf("recordSize = %d, encoding has %d bytes", recordSize(&r), len(enc))
		}
		var again bus.Record
		if err := decodeRecord(enc, &again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("round trip changed the record:\n got %+v\nwant %+v", again, r)
		}
	})
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(appendMeta(nil, topicState{epoch: 7, first: 1, last: 0}))
	f.Add(appendMeta(nil, topicState{epoch: 1 << 63, first: 5, last: 900, bytes: 12345}))
	f.Add([]byte{metaV1})
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := decodeMeta(raw)
		if err != nil {
			return
		}
		again, err := decodeMeta(appendMeta(nil, m))
		if err != nil || again != m {
			t.Fatalf("round trip: got %+v, %v; want %+v", again, err, m)
		}
	})
}

func FuzzDecodeConsumer(f *testing.F) {
	f.Add(appendConsumer(nil, &bus.ConsumerState{}))
	f.Add(appendConsumer(nil, &bus.ConsumerState{AckFloor: 5, Delivered: 10, Acked: []uint64{7, 9}}))
	f.Add([]byte{consumerV1, 1, 2, 200})
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := decodeConsumer(raw)
		if err != nil {
			return
		}
		again, err := decodeConsumer(appendConsumer(nil, &c))
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip: got %+v, %v; want %+v", again, err, c)
		}
	})
}

func TestCodecAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	r := bus.Record{Time: time.Now(), Data: make([]byte, 64)}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = appendRecord(buf[:0], &r) }); n != 0 {
		t.Errorf("appendRecord: %v allocs, want 0", n)
	}
	enc := appendRecord(nil, &r)
	var out bus.Record
	if n := testing.AllocsPerRun(100, func() { _ = decodeRecord(enc, &out) }); n != 1 {
		t.Errorf("decodeRecord of a plain record: %v allocs, want 1 (the data)", n)
	}
}
