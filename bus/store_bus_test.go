package bus_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/courierbus/courier/bus"
)

// These tests run the bus on a Store, as with persist, using the memory
// store; a "restart" is a new bus on the same store.

func TestStoredTopicSurvivesRestart(t *testing.T) {
	st := bus.NewMemoryStore()
	defer st.Close()
	ctx := context.Background()

	b1, _ := bus.New(bus.WithStore(st), bus.History(2, 0))
	tp1, _ := bus.NewTopic[string](b1, "log")
	for _, v := range []string{"a", "b", "c", "d"} {
		if _, err := tp1.Publish(ctx, v, bus.PublisherID("id-"+v)); err != nil {
			t.Fatal(err)
		}
	}
	epoch := tp1.Epoch()
	b1.Close()

	b2 := newBus(t, bus.WithStore(st), bus.History(2, 0))
	tp2 := newTopic[string](t, b2, "log")
	if tp2.Epoch() != epoch {
		t.Fatalf("epoch after restart = %d, want %d (kept by the store)", tp2.Epoch(), epoch)
	}
	// Older than the ring: read from the store.
	msgs, err := tp2.ReadAfter(ctx, bus.Position{Epoch: epoch, Seq: 0}, 10)
	if err != nil || fmt.Sprint(values(msgs)) != "[a b c d]" {
		t.Fatalf("ReadAfter(0) after restart = %v, %v", values(msgs), err)
	}
	// Sequence numbers go on; a publisher id of the window is remembered.
	if seq, _ := tp2.Publish(ctx, "e"); seq != 5 {
		t.Fatalf("first seq after restart = %d, want 5", seq)
	}
	if seq, _ := tp2.Publish(ctx, "b again", bus.PublisherID("id-b")); seq != 2 {
		t.Fatalf("duplicate publisher id after restart got seq %d, want 2", seq)
	}
	got := make(chan string, 10)
	tp2.Subscribe(func(_ context.Context, m bus.Message[string]) error { got <- m.Value; return nil }, bus.StartSeq(2))
	if s := fmt.Sprint([]string{recv(t, got), recv(t, got), recv(t, got), recv(t, got)}); s != "[b c d e]" {
		t.Fatalf("subscription from seq 2 = %s", s)
	}
	none(t, got)
}

func TestDurableOnStoreResumesAfterRestart(t *testing.T) {
	st := bus.NewMemoryStore()
	defer st.Close()
	ctx := context.Background()

	b1, _ := bus.New(bus.WithStore(st))
	tp1, _ := bus.NewTopic[int](b1, "jobs")
	done := make(chan int, 10)
	tp1.Subscribe(func(_ context.Context, m bus.Message[int]) error {
		if m.Value == 3 {
			return errors.New("crash before acking 3")
		}
		done <- m.Value
		return nil
	}, bus.Durable("worker"), bus.MaxDeliver(100))
	for i := 1; i <= 4; i++ {
		tp1.Publish(ctx, i)
	}
	recv(t, done)
	recv(t, done)
	b1.Close() // 1 and 2 acked; 3 failed and waits for a retry; 4 waits behind it

	b2 := newBus(t, bus.WithStore(st))
	tp2 := newTopic[int](t, b2, "jobs")
	tp2.Publish(ctx, 5)
	again := make(chan int, 10)
	tp2.Subscribe(func(_ context.Context, m bus.Message[int]) error { again <- m.Value; return nil }, bus.Durable("worker"))
	if got := fmt.Sprint([]int{recv(t, again), recv(t, again), recv(t, again)}); got != "[3 4 5]" {
		t.Fatalf("durable after restart got %s, want [3 4 5]", got)
	}
	none(t, again)
}
