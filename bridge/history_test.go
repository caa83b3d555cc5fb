package bridge_test

import (
	"context"
	"sync"
	"testing"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bus"
)

// readCounter counts the reads of a store, and those below what it holds.
type readCounter struct {
	bus.Store
	mu          sync.Mutex
	reads, miss int
}

func (s *readCounter) Read(ctx context.Context, topic string, from uint64, limit int, buf []bus.Record) ([]bus.Record, error) {
	out, err := s.Store.Read(ctx, topic, from, limit, buf)
	s.mu.Lock()
	s.reads++
	if err != nil {
		s.miss++
	}
	s.mu.Unlock()
	return out, err
}

func (s *readCounter) counts() (reads, miss int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads, s.miss
}

// TestStartBelowHistory: a subscription that starts below what history
// holds begins at the oldest message held, which the bridge learns from the
// bus's bounds (the store's, past the in-memory ring) without probing the
// history with reads.
func TestStartBelowHistory(t *testing.T) {
	mem := bus.NewMemoryStore(bus.MemoryRetention(50, 0))
	defer mem.Close()
	st := &readCounter{Store: mem}
	e := newEnv(t, []bus.Option{bus.WithStore(st), bus.History(4, 0)}, bridge.Expose("news.>", bridge.Subscribe))
	for range 200 {
		if _, err := e.bus.PublishRaw(ctxT(t), "news.x", []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	pos, err := e.bus.Position(ctxT(t), "news.x")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opt  client.SubscribeOption
	}{
		{"seq", client.StartSeq(1)},
		{"after", client.StartAfter(pos.Epoch, 10)},
		{"first", client.StartFirst()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events := make(chan client.Event, 16)
			c := e.dial(client.OnEvent(func(ev client.Event) {
				if ev.Type == client.Resync {
					events <- ev
				}
			}))
			reads0, miss0 := st.counts()
			in := newInbox()
			if _, err := c.Subscribe(ctxT(t), "news.x", in.handle, tc.opt); err != nil {
				t.Fatal(err)
			}
			msgs := in.wait(t, 50)
			if msgs[0].Seq != 151 || msgs[49].Seq != 200 {
				t.Errorf("got seq %d..%d, want 151..200 (what the store holds)", msgs[0].Seq, msgs[49].Seq)
			}
			if tc.name != "first" {
				if ev := <-events; ev.Seq != 151 {
					t.Errorf("resync at %d, want 151", ev.Seq)
				}
			}
			reads, miss := st.counts()
			if miss != miss0 {
				t.Errorf("%d store reads below what it holds, want none", miss-miss0)
			}
			if reads-reads0 > 2 {
				t.Errorf("%d store reads to send 50 messages, want at most 2", reads-reads0)
			}
		})
	}
}
