package bridge

import (
	"context"
	"fmt"
	"testing"

	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
)

// instantWriter stands in for melody: each batch is written at once.
type instantWriter struct {
	c      *conn
	bytes  int
	writes int
}

func (w *instantWriter) Write(p []byte) error {
	w.bytes += len(p)
	w.writes++
	w.c.sent()
	return nil
}

// fanoutBench is a bridge with n sessions subscribed to "bench.x" on fake
// connections, no network and no catch-up workers.
type fanoutBench struct {
	b        *bus.Bus
	br       *Bridge
	rt       *route
	sessions []*session
	writers  []*instantWriter
	msgs     []bus.Message[any]
}

func newFanoutBench(tb testing.TB, n int, volatile bool, nmsgs int) *fanoutBench {
	b, err := bus.New(bus.History(nmsgs+1, 0))
	if err != nil {
		tb.Fatal(err)
	}
	br, err := New(b, Expose(">", Subscribe), optFunc(func(c *config) { c.catchupWorkers = 0 }))
	if err != nil {
		tb.Fatal(err)
	}
	fb := &fanoutBench{b: b, br: br}
	tb.Cleanup(func() { br.Close(); b.Close() })
	data := []byte(`{"user":"alice","text":"hello, world","at":1700000000}`)
	for range nmsgs {
		if _, err := b.PublishRaw(context.Background(), "bench.x", data); err != nil {
			tb.Fatal(err)
		}
	}
	if fb.msgs, err = b.Read(context.Background(), "bench.x", 1, nmsgs); err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		c := newConn(br, Identity{}, "")
		w := &instantWriter{c: c}
		c.w = w
		s, err := br.newSession(c, Identity{}, "")
		if err != nil {
			tb.Fatal(err)
		}
		s.mu.Lock()
		s.attach(c)
		s.mu.Unlock()
		c.handle(&wire.Frame{Op: wire.OpSubscribe, Sub: fmt.Sprint("s", i), Pattern: "bench.x", Volatile: volatile, MaxInflight: 4096})
		fb.sessions = append(fb.sessions, s)
		fb.writers = append(fb.writers, w)
	}
	fb.rt = br.routes["bench.x"]
	fb.rewind()
	return fb
}

// rewind acknowledges everything and puts every stream back at seq 1, so
// that the same messages can be fanned out again.
func (fb *fanoutBench) rewind() {
	for _, s := range fb.sessions {
		s.mu.Lock()
		for _, cs := range s.subs {
			s.ack(cs, 0, cs.nextN)
			for _, st := range cs.streams {
				st.next, st.synced = 1, true
			}
		}
		s.mu.Unlock()
	}
}

// BenchmarkFanout measures one message fanned out to n connections:
// encoded once, appended to each connection's batch, written.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		for _, volatile := range []bool{true, false} {
			mode := "at-least-once"
			if volatile {
				mode = "volatile"
			}
			b.Run(fmt.Sprintf("conns=%d/%s", n, mode), func(b *testing.B) {
				const nmsgs = 1000
				fb := newFanoutBench(b, n, volatile, nmsgs)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if i == nmsgs {
						b.StopTimer()
						fb.rewind()
						i = 0
						b.StartTimer()
					}
					fb.rt.fanout(&fb.msgs[i])
					i++
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			})
		}
	}
}

// BenchmarkBatch measures frames queued on one connection while its
// writer is busy, then written as one message.
func BenchmarkBatch(b *testing.B) {
	for _, frames := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("frames=%d", frames), func(b *testing.B) {
			fb := newFanoutBench(b, 1, true, 1)
			c := fb.sessions[0].c
			sub := wire.AppendString(nil, "s0")
			tail := fb.br.tail(&fb.msgs[0], []byte(`{"text":"hello, world"}`))
			busy := &[]byte{}
			b.ReportAllocs()
			for b.Loop() {
				c.outMu.Lock()
				c.writing = busy // the writer is busy: frames wait
				c.outMu.Unlock()
				for range frames {
					c.sendMsg(sub, 0, 1, tail)
				}
				c.sent() // written: the waiting frames go as one message
				c.sent()
			}
		})
	}
}

// TestFanoutAllocs checks that fanning a message out costs a constant
// number of allocations, not one per connection.
func TestFanoutAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	fb := newFanoutBench(t, 200, true, 1)
	fb.rt.fanout(&fb.msgs[0]) // warm the buffer pool
	allocs := testing.AllocsPerRun(100, func() { fb.rt.fanout(&fb.msgs[0]) })
	if allocs > 8 {
		t.Fatalf("%.0f allocations to fan out to 200 connections, want a few per message", allocs)
	}
}
