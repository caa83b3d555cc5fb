package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/courierbus/courier/bus"
)

// feedBroker is a Broker over a memory store that lets the test hand the
// bus records as a broker whose history went back would, and answer
// HistoryChecker's question.
type feedBroker struct {
	bus.Store
	feed bus.Feed

	mu   sync.Mutex
	held uint64 // Lost: the last seq the history holds
	asks []bus.Position
}

func (f *feedBroker) Attach(fd bus.Feed) error { f.feed = fd; return nil }

func (f *feedBroker) Lost(_ context.Context, _ string, p bus.Position) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asks = append(f.asks, p)
	return p.Seq > f.held, nil
}

func (f *feedBroker) record(topic string, seq, epoch uint64, v int) {
	f.feed.Record(topic, bus.Record{Seq: seq, Epoch: epoch, Time: time.Now(), Data: []byte(strconv.Itoa(v))})
}

// A record that starts a new epoch (the broker's history went back to
// seq-1) makes the topic's epoch the new one: live subscribers get it with
// its position under the new epoch and go on; positions of the old epoch
// are ErrNotCovered; and a position of the new epoch past the end is asked
// about and, when the broker says it was lost, ErrNotCovered too.
func TestBrokerNewEpoch(t *testing.T) {
	fb := &feedBroker{Store: bus.NewMemoryStore()}
	b := newBus(t, bus.WithBroker(fb))
	tp := newTopic[int](t, b, "t")
	old := tp.Epoch()
	type got struct {
		pos bus.Position
		v   int
	}
	ch := make(chan got, 16)
	if _, err := tp.Subscribe(func(_ context.Context, m bus.Message[int]) error {
		ch <- got{m.Position(), m.Value}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 5; seq++ {
		fb.record("t", seq, 0, int(seq))
	}
	const fresh = 77
	fb.record("t", 4, fresh, 40) // 4 and 5 were lost; 4 is given again, under a new epoch
	fb.record("t", 5, 0, 50)
	want := []got{
		{bus.Position{Epoch: old, Seq: 1}, 1}, {bus.Position{Epoch: old, Seq: 2}, 2}, {bus.Position{Epoch: old, Seq: 3}, 3},
		{bus.Position{Epoch: old, Seq: 4}, 4}, {bus.Position{Epoch: old, Seq: 5}, 5},
		{bus.Position{Epoch: fresh, Seq: 4}, 40}, {bus.Position{Epoch: fresh, Seq: 5}, 50},
	}
	for i, w := range want {
		if g := recv(t, ch); g != w {
			t.Fatalf("delivery %d: got %+v, want %+v", i, g, w)
		}
	}
	if tp.Epoch() != fresh {
		t.Fatalf("topic epoch %d, want %d", tp.Epoch(), fresh)
	}
	if pos, err := b.Position(context.Background(), "t"); err != nil || pos != (bus.Position{Epoch: fresh, Seq: 5}) {
		t.Fatalf("Position: %+v, %v", pos, err)
	}

	nop := func(context.Context, bus.Message[int]) error { return nil }
	for _, tc := range []struct {
		name string
		p    bus.Position
		held uint64
		want error
	}{
		{"old epoch", bus.Position{Epoch: old, Seq: 3}, 5, bus.ErrNotCovered},
		{"new epoch, past the end, lost", bus.Position{Epoch: fresh, Seq: 9}, 5, bus.ErrNotCovered},
		{"new epoch, past the end, this bus behind", bus.Position{Epoch: fresh, Seq: 9}, 9, nil},
		{"new epoch, held", bus.Position{Epoch: fresh, Seq: 5}, 5, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fb.mu.Lock()
			fb.held, fb.asks = tc.held, nil
			fb.mu.Unlock()
			sub, err := tp.Subscribe(nop, bus.StartAfter(tc.p))
			if !errors.Is(err, tc.want) || tc.want == nil && err != nil {
				t.Fatalf("Subscribe after %+v: got %v, want %v", tc.p, err, tc.want)
			}
			if sub != nil {
				sub.Unsubscribe()
			}
			_, err = tp.ReadAfter(context.Background(), tc.p, 10)
			if !errors.Is(err, tc.want) || tc.want == nil && err != nil {
				t.Fatalf("ReadAfter %+v: got %v, want %v", tc.p, err, tc.want)
			}
			fb.mu.Lock()
			asks := fmt.Sprint(fb.asks)
			fb.mu.Unlock()
			if ahead := tc.p.Epoch == fresh && tc.p.Seq > 5; ahead != (asks != "[]") {
				t.Fatalf("the broker was asked about %s", asks)
			}
		})
	}
}

// epochBroker is a feedBroker whose appends give the epoch the test says.
type epochBroker struct {
	*feedBroker
	seq, epoch uint64
}

func (e *epochBroker) AppendEpoch(ctx context.Context, topic string, r bus.Record) (uint64, uint64, error) {
	return e.seq, e.epoch, nil
}

// A publish whose record the broker gave under a new epoch returns once
// the bus has that epoch, even when its number is one the bus had under
// the old one, so that the position it reports is the record's.
func TestPublishWaitsForItsEpoch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eb := &epochBroker{feedBroker: &feedBroker{Store: bus.NewMemoryStore()}}
		b := newBus(t, bus.WithBroker(eb))
		tp := newTopic[int](t, b, "t")
		for seq := uint64(1); seq <= 5; seq++ {
			eb.record("t", seq, 0, int(seq))
		}
		const fresh = 99
		eb.seq, eb.epoch = 4, fresh // 4 and 5 were lost
		done := make(chan uint64, 1)
		go func() {
			seq, err := tp.Publish(context.Background(), 40)
			if err != nil {
				t.Error(err)
			}
			done <- seq
		}()
		synctest.Wait()
		if len(done) != 0 {
			t.Fatal("the publish returned before its record came back under its epoch")
		}
		eb.record("t", 4, fresh, 40)
		if seq := <-done; seq != 4 || tp.Epoch() != fresh {
			t.Fatalf("got seq %d under epoch %d, want 4 under %d", seq, tp.Epoch(), fresh)
		}
	})
}
