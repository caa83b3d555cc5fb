package bus_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/courierbus/courier/bus"
)

func values[T any](msgs []bus.Message[T]) []T {
	out := make([]T, len(msgs))
	for i, m := range msgs {
		out[i] = m.Value
	}
	return out
}

func TestHistoryReadAndNotCovered(t *testing.T) {
	b := newBus(t)
	tp := newTopic[int](t, b, "h", bus.History(5, 0))
	for i := 1; i <= 8; i++ {
		publish(t, tp, i)
	}
	ctx := context.Background()
	msgs, err := tp.Read(ctx, 4, 10)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(values(msgs)) != "[4 5 6 7 8]" {
		t.Fatalf("Read(4) = %v", values(msgs))
	}
	if _, err := tp.Read(ctx, 3, 10); !errors.Is(err, bus.ErrNotCovered) {
		t.Fatalf("Read(3) after trimming: %v, want ErrNotCovered", err)
	}
	if msgs, err := tp.ReadAfter(ctx, bus.Position{Epoch: tp.Epoch(), Seq: 6}, 10); err != nil || fmt.Sprint(values(msgs)) != "[7 8]" {
		t.Fatalf("ReadAfter(6) = %v, %v", values(msgs), err)
	}
	if _, err := tp.ReadAfter(ctx, bus.Position{Epoch: tp.Epoch() + 1, Seq: 6}, 10); !errors.Is(err, bus.ErrNotCovered) {
		t.Fatalf("ReadAfter with another epoch: %v, want ErrNotCovered", err)
	}
	if _, err := tp.Subscribe(func(context.Context, bus.Message[int]) error { return nil }, bus.StartSeq(2)); !errors.Is(err, bus.ErrNotCovered) {
		t.Fatalf("subscribe from a trimmed seq: %v, want ErrNotCovered", err)
	}
	if _, err := tp.Subscribe(func(context.Context, bus.Message[int]) error { return nil },
		bus.StartAfter(bus.Position{Epoch: 12345, Seq: 7})); !errors.Is(err, bus.ErrNotCovered) {
		t.Fatalf("subscribe after a position of another epoch: %v, want ErrNotCovered", err)
	}
}

func TestHistoryAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus(t)
		tp := newTopic[int](t, b, "aged", bus.History(100, time.Minute))
		publish(t, tp, 1)
		time.Sleep(2 * time.Minute)
		publish(t, tp, 2)
		if _, err := tp.Read(context.Background(), 1, 10); !errors.Is(err, bus.ErrNotCovered) {
			t.Fatalf("Read of an expired message: %v, want ErrNotCovered", err)
		}
		msgs, _ := tp.Read(context.Background(), 2, 10)
		if fmt.Sprint(values(msgs)) != "[2]" {
			t.Fatalf("Read(2) = %v", values(msgs))
		}
	})
}

func TestEpochsDifferPerBus(t *testing.T) {
	a := newTopic[int](t, newBus(t), "e")
	b := newTopic[int](t, newBus(t), "e")
	if a.Epoch() == 0 || a.Epoch() == b.Epoch() {
		t.Fatalf("epochs %d and %d: want non-zero and different per in-memory bus", a.Epoch(), b.Epoch())
	}
}

func collect(t *testing.T, tp *bus.Topic[int], n int, opts ...bus.SubscribeOption) (chan int, *bus.Subscription) {
	t.Helper()
	ch := make(chan int, n)
	sub, err := tp.Subscribe(func(_ context.Context, m bus.Message[int]) error { ch <- m.Value; return nil }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ch, sub
}

func take(t *testing.T, ch chan int, n int) string {
	t.Helper()
	got := make([]int, n)
	for i := range got {
		got[i] = recv(t, ch)
	}
	return fmt.Sprint(got)
}

func TestStartPositions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus(t)
		tp := newTopic[int](t, b, "s")
		for i := 1; i <= 3; i++ {
			publish(t, tp, i)
			time.Sleep(time.Second)
		}
		mid := time.Now().Add(-1500 * time.Millisecond) // between 2 and 3
		first, _ := collect(t, tp, 10, bus.StartFirst())
		fromSeq, _ := collect(t, tp, 10, bus.StartSeq(2))
		after, _ := collect(t, tp, 10, bus.StartAfter(bus.Position{Epoch: tp.Epoch(), Seq: 1}))
		fromTime, _ := collect(t, tp, 10, bus.StartTime(mid))
		future, _ := collect(t, tp, 10, bus.StartSeq(5))
		aheadOf, _ := collect(t, tp, 10, bus.StartAfter(bus.Position{Epoch: tp.Epoch(), Seq: 4}))
		fresh, _ := collect(t, tp, 10)
		if _, err := tp.Subscribe(func(context.Context, bus.Message[int]) error { return nil },
			bus.StartAfter(bus.Position{Epoch: tp.Epoch(), Seq: math.MaxUint64})); !errors.Is(err, bus.ErrInvalidOption) {
			t.Errorf("StartAfter the largest seq: %v, want ErrInvalidOption", err)
		}
		publish(t, tp, 4)
		publish(t, tp, 5)
		synctest.Wait()
		for _, tc := range []struct {
			name string
			ch   chan int
			want string
		}{
			{"first", first, "[1 2 3 4 5]"},
			{"seq 2", fromSeq, "[2 3 4 5]"},
			{"after 1", after, "[2 3 4 5]"},
			{"time", fromTime, "[3 4 5]"},
			{"future seq 5", future, "[5]"},
			{"after 4, ahead of the topic", aheadOf, "[5]"},
			{"new", fresh, "[4 5]"},
		} {
			got := make([]int, 0, len(tc.ch))
			for len(tc.ch) > 0 {
				got = append(got, <-tc.ch)
			}
			if fmt.Sprint(got) != tc.want {
				t.Errorf("%s: got %v, want %s", tc.name, got, tc.want)
			}
		}
	})
}

// TestCatchUpThenLiveWithoutGapOrDuplicate publishes while a subscriber
// starting from the first message catches up.
func TestCatchUpThenLiveWithoutGapOrDuplicate(t *testing.T) {
	b := newBus(t)
	tp := newTopic[int](t, b, "cl", bus.History(5000, 0))
	for i := 1; i <= 1000; i++ {
		publish(t, tp, i)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1001; i <= 2000; i++ {
			publish(t, tp, i)
		}
	}()
	ch, _ := collect(t, tp, 2000, bus.StartFirst())
	<-done
	for want := 1; want <= 2000; want++ {
		if got := recv(t, ch); got != want {
			t.Fatalf("got %d, want %d", got, want)
		}
	}
	none(t, ch)
}

func TestDurableResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus(t)
		tp := newTopic[int](t, b, "orders")
		var got []string
		handler := func(_ context.Context, m bus.Message[int]) error {
			got = append(got, fmt.Sprintf("%d#%d", m.Value, m.Attempt()))
			if m.Value == 3 && m.Attempt() == 1 {
				return errors.New("fail once")
			}
			return nil
		}
		opts := []bus.SubscribeOption{bus.Durable("billing"), bus.Backoff(func(int) time.Duration { return time.Hour })}
		sub, err := tp.Subscribe(handler, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tp.Subscribe(handler, opts...); !errors.Is(err, bus.ErrDurableActive) {
			t.Fatalf("second live subscription with the durable name: %v", err)
		}
		for i := 1; i <= 4; i++ {
			publish(t, tp, i)
		}
		synctest.Wait() // 1 and 2 acked, 3 failed and waits an hour, 4 queued
		sub.Unsubscribe()
		<-sub.Done()
		publish(t, tp, 5)
		publish(t, tp, 6)
		if _, err := tp.Subscribe(handler, opts...); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		// 3 was handed out before: its attempt count goes on. 4 was queued,
		// never handed out: it starts at 1.
		want := "[1#1 2#1 3#1 3#2 4#1 5#1 6#1]"
		if fmt.Sprint(got) != want {
			t.Fatalf("deliveries %v\nwant       %v", got, want)
		}
	})
}

func TestDurableStartsWhereOptionSays(t *testing.T) {
	b := newBus(t)
	tp := newTopic[int](t, b, "ds")
	publish(t, tp, 1)
	ch, sub := collect(t, tp, 10, bus.Durable("d1"), bus.StartFirst())
	if got := take(t, ch, 1); got != "[1]" {
		t.Fatal(got)
	}
	sub.Unsubscribe()
	<-sub.Done()
	publish(t, tp, 2)
	ch, _ = collect(t, tp, 10, bus.Durable("d1"), bus.StartFirst())
	if got := take(t, ch, 1); got != "[2]" {
		t.Fatalf("resumed durable got %s, want [2] (its saved position wins over StartFirst)", got)
	}
}

func TestDeleteDurable(t *testing.T) {
	b := newBus(t)
	tp := newTopic[int](t, b, "dd", bus.History(2, 0))
	ch, sub := collect(t, tp, 10, bus.Durable("d"))
	publish(t, tp, 1)
	recv(t, ch)
	sub.Unsubscribe()
	<-sub.Done()
	for i := 2; i <= 5; i++ {
		publish(t, tp, i) // 2 and 3 fall out of the history
	}
	if _, err := tp.Subscribe(func(context.Context, bus.Message[int]) error { return nil }, bus.Durable("d")); !errors.Is(err, bus.ErrNotCovered) {
		t.Fatalf("durable whose next message was trimmed: %v, want ErrNotCovered", err)
	}
	ctx := context.Background()
	if err := b.DeleteDurable(ctx, "dd", "d"); err != nil {
		t.Fatal(err)
	}
	ch, _ = collect(t, tp, 10, bus.Durable("d"), bus.StartFirst())
	if got := take(t, ch, 2); got != "[4 5]" {
		t.Fatalf("durable after DeleteDurable got %s, want [4 5]", got)
	}
	if err := b.DeleteDurable(ctx, "dd", "d"); !errors.Is(err, bus.ErrDurableActive) {
		t.Fatalf("DeleteDurable of a live durable: %v, want ErrDurableActive", err)
	}
}

func TestBounds(t *testing.T) {
	b := newBus(t)
	ctx := context.Background()
	tp := newTopic[int](t, b, "bd", bus.History(3, 0))
	bd, err := b.Bounds(ctx, "bd")
	if err != nil || bd.First != 1 || bd.Last != 0 || bd.Epoch != tp.Epoch() {
		t.Fatalf("empty topic bounds = %+v, %v; want First 1 > Last 0", bd, err)
	}
	for i := 1; i <= 5; i++ {
		publish(t, tp, i)
	}
	if bd, _ := b.Bounds(ctx, "bd"); bd.First != 3 || bd.Last != 5 {
		t.Fatalf("bounds = %+v, want First 3, Last 5", bd)
	}

	st := bus.NewMemoryStore(bus.MemoryRetention(4, 0))
	defer st.Close()
	sb := newBus(t, bus.WithStore(st), bus.History(2, 0))
	stp := newTopic[int](t, sb, "bd")
	for i := 1; i <= 6; i++ {
		publish(t, stp, i)
	}
	if bd, _ := sb.Bounds(ctx, "bd"); bd.First != 3 || bd.Last != 6 {
		t.Fatalf("stored topic bounds = %+v, want First 3 (the store keeps 4), Last 6", bd)
	}
}
