package persist_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/persist"
)

// TestBusOnBadger runs a bus on a Badger store through a restart of both:
// the topic's epoch and sequence go on, history older than the bus's ring
// comes from disk, and a durable consumer resumes at its first
// unacknowledged message.
func TestBusOnBadger(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	type note struct{ N int }

	st, err := persist.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.New(bus.WithStore(st), bus.History(4, 0))
	if err != nil {
		t.Fatal(err)
	}
	tp, err := bus.NewTopic[note](b, "notes")
	if err != nil {
		t.Fatal(err)
	}
	acked := make(chan int, 100)
	_, err = tp.Subscribe(func(_ context.Context, m bus.Message[note]) error {
		if m.Value.N == 6 {
			return errors.New("not now")
		}
		acked <- m.Value.N
		return nil
	}, bus.Durable("reader"), bus.MaxDeliver(1000), bus.Backoff(func(int) time.Duration { return time.Hour }))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ {
		if seq, err := tp.Publish(ctx, note{i}, bus.PublisherID(fmt.Sprint("p", i))); err != nil || seq != uint64(i) {
			t.Fatalf("Publish %d = %d, %v", i, seq, err)
		}
	}
	for i := 1; i <= 5; i++ {
		if got := <-acked; got != i {
			t.Fatalf("acked %d, want %d", got, i)
		}
	}
	epoch := tp.Epoch()
	b.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = persist.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cs, _, _ := st.Consumer(ctx, "notes", "reader")
	t.Logf("consumer state after restart: %+v", cs)
	b, err = bus.New(bus.WithStore(st), bus.History(4, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tp, err = bus.NewTopic[note](b, "notes")
	if err != nil {
		t.Fatal(err)
	}
	if tp.Epoch() != epoch {
		t.Fatalf("epoch after reopen = %d, want %d", tp.Epoch(), epoch)
	}
	if seq, _ := tp.Publish(ctx, note{11}); seq != 11 {
		t.Fatalf("seq after reopen = %d, want 11", seq)
	}
	if seq, _ := tp.Publish(ctx, note{99}, bus.PublisherID("p3")); seq != 3 {
		t.Fatalf("a publisher id from before the restart got seq %d, want 3", seq)
	}
	msgs, err := tp.ReadAfter(ctx, bus.Position{Epoch: epoch, Seq: 0}, 100)
	if err != nil || len(msgs) != 11 || msgs[0].Value.N != 1 || msgs[10].Value.N != 11 {
		t.Fatalf("history after reopen: %d messages, %v", len(msgs), err)
	}
	again := make(chan int, 100)
	if _, err := tp.Subscribe(func(_ context.Context, m bus.Message[note]) error {
		again <- m.Value.N
		return nil
	}, bus.Durable("reader")); err != nil {
		t.Fatal(err)
	}
	for want := 6; want <= 11; want++ {
		select {
		case got := <-again:
			if got != want {
				t.Fatalf("durable after reopen got %d, want %d", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("durable after reopen: no message %d", want)
		}
	}
}
