package client

import (
	"fmt"
	"strings"
	"testing"
)

// decodeCases are WebSocket messages as the bridge sends them: one message
// frame, a batch of them, and a batch with the headers of client publishes.
func decodeCases() []struct {
	name string
	msg  []byte
} {
	broadcast := `{"op":"message","sub":"s1","topic":"bench.broadcast","data":{"bk":12,"bt":1700000000123456789,"text":"hello, world"}}`
	acked := `{"op":"message","sub":"s1","n":%d,"topic":"chat.lobby","epoch":"1844674407370955","seq":%d,` +
		`"headers":{"courier-session":"u0N8c2Ew3jYyqH2f1m9ZaQ","courier-user":"alice"},"data":{"text":"hi there","at":1700000000}}`
	batch := func(n int, frame func(i int) string) []byte {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = frame(i)
		}
		return []byte("[" + strings.Join(parts, ",") + "]")
	}
	return []struct {
		name string
		msg  []byte
	}{
		{"one", []byte(broadcast)},
		{"batch16", batch(16, func(int) string { return broadcast })},
		{"batch16-headers", batch(16, func(i int) string { return fmt.Sprintf(acked, i+1, i+41) })},
	}
}

// BenchmarkDecode measures decoding one WebSocket message of the server's,
// per frame.
func BenchmarkDecode(b *testing.B) {
	for _, tc := range decodeCases() {
		b.Run(tc.name, func(b *testing.B) {
			var d decoder
			frames, err := d.decode(tc.msg)
			if err != nil || len(frames) == 0 {
				b.Fatalf("decode: %d frames, %v", len(frames), err)
			}
			n := len(frames)
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.msg)))
			for b.Loop() {
				d.decode(tc.msg)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/frame")
		})
	}
}
