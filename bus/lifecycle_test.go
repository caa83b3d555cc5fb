package bus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/courierbus/courier/bus"
)

// blocked subscribes a handler that waits for release before returning.
func blocked(t *testing.T, tp *bus.Topic[int], release <-chan struct{}, got chan<- int, opts ...bus.SubscribeOption) *bus.Subscription {
	t.Helper()
	sub, err := tp.Subscribe(func(_ context.Context, m bus.Message[int]) error {
		<-release
		got <- m.Value
		return nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

func TestFullQueuePolicies(t *testing.T) {
	t.Run("Block", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBus(t)
			tp := newTopic[int](t, b, "q")
			release := make(chan struct{})
			got := make(chan int, 10)
			blocked(t, tp, release, got, bus.QueueSize(2))
			publish(t, tp, 1) // taken by the handler, which blocks
			synctest.Wait()
			publish(t, tp, 2)
			publish(t, tp, 3) // queue full now
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if _, err := tp.Publish(ctx, 4); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("publish to a full Block queue: %v, want the context's error", err)
			}
			var seq atomic.Uint64
			go func() {
				s, _ := tp.Publish(context.Background(), 5)
				seq.Store(s)
			}()
			synctest.Wait()
			if seq.Load() != 0 {
				t.Fatal("publisher did not wait for room")
			}
			close(release)
			synctest.Wait()
			if seq.Load() != 4 {
				t.Fatalf("blocked publish got seq %d, want 4 (the timed-out one published nothing)", seq.Load())
			}
			for _, want := range []int{1, 2, 3, 5} {
				if v := <-got; v != want {
					t.Fatalf("got %d, want %d", v, want)
				}
			}
		})
	})
	for _, tc := range []struct {
		name   string
		policy bus.Policy
		want   string // what the subscriber gets of 1..5 with a queue of 2
	}{
		{"DropNewest", bus.DropNewest, "[1 2 3]"},
		{"DropOldest", bus.DropOldest, "[1 4 5]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBus(t)
				tp := newTopic[int](t, b, "q")
				release := make(chan struct{})
				got := make(chan int, 10)
				sub := blocked(t, tp, release, got, bus.Volatile(), bus.QueueSize(2), bus.OnFull(tc.policy))
				publish(t, tp, 1) // taken by the handler, which blocks
				synctest.Wait()
				for i := 2; i <= 5; i++ {
					publish(t, tp, i)
				}
				close(release)
				synctest.Wait()
				var kept []int
				for len(got) > 0 {
					kept = append(kept, <-got)
				}
				if fmt.Sprint(kept) != tc.want {
					t.Fatalf("%v kept %v, want %s", tc.policy, kept, tc.want)
				}
				if d := sub.Stats().Dropped; d != 2 {
					t.Fatalf("dropped = %d, want 2", d)
				}
				if st := b.Stats(); st.Topics[0].Dropped != 2 {
					t.Fatalf("topic dropped = %d, want 2", st.Topics[0].Dropped)
				}
			})
		})
	}
	t.Run("Disconnect", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBus(t)
			tp := newTopic[int](t, b, "q")
			release := make(chan struct{})
			got := make(chan int, 10)
			ended := make(chan error, 1)
			sub := blocked(t, tp, release, got, bus.QueueSize(2), bus.OnFull(bus.Disconnect), bus.Durable("slow"),
				bus.OnEnd(func(err error) { ended <- err }))
			fast := make(chan int, 10)
			tp.Subscribe(func(_ context.Context, m bus.Message[int]) error { fast <- m.Value; return nil })
			for i := 1; i <= 4; i++ {
				publish(t, tp, i)
				synctest.Wait()
			}
			close(release)
			synctest.Wait()
			if err := <-ended; !errors.Is(err, bus.ErrSlowConsumer) {
				t.Fatalf("ended with %v, want ErrSlowConsumer", err)
			}
			<-sub.Done()
			if len(fast) != 4 {
				t.Fatalf("the other subscriber got %d messages, want all 4", len(fast))
			}
			// Nothing is lost for at-least-once: the durable resumes.
			var resumed []int
			for len(got) > 0 {
				resumed = append(resumed, <-got)
			}
			again := make(chan int, 10)
			tp.Subscribe(func(_ context.Context, m bus.Message[int]) error { again <- m.Value; return nil }, bus.Durable("slow"))
			synctest.Wait()
			for len(again) > 0 {
				resumed = append(resumed, <-again)
			}
			if len(resumed) != 4 || resumed[0] != 1 || resumed[len(resumed)-1] != 4 {
				t.Fatalf("slow durable got %v over both lives, want 1..4", resumed)
			}
		})
	})
	t.Run("VolatilePublishNeverBlocks", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBus(t)
			tp := newTopic[int](t, b, "q")
			release := make(chan struct{})
			got := make(chan int, 10)
			blocked(t, tp, release, got, bus.QueueSize(1))
			publish(t, tp, 1)
			synctest.Wait()
			publish(t, tp, 2)
			publish(t, tp, 3, bus.Volatile()) // full: dropped, not blocked
			close(release)
			synctest.Wait()
			if len(got) != 2 {
				t.Fatalf("got %d messages, want 2", len(got))
			}
		})
	})
}

func TestVolatilePublishWaitsForVolatileBlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus(t)
		tp := newTopic[int](t, b, "q")
		release := make(chan struct{})
		got := make(chan int, 10)
		blocked(t, tp, release, got, bus.Volatile(), bus.OnFull(bus.Block), bus.QueueSize(1))
		publish(t, tp, 1, bus.Volatile())
		synctest.Wait()
		publish(t, tp, 2, bus.Volatile()) // fills the queue
		var returned atomic.Bool
		go func() {
			tp.Publish(context.Background(), 3, bus.Volatile())
			returned.Store(true)
		}()
		synctest.Wait()
		if returned.Load() {
			t.Fatal("volatile publish did not wait for a volatile Block subscription")
		}
		close(release)
		synctest.Wait()
		if !returned.Load() || len(got) != 3 {
			t.Fatalf("returned=%v, delivered %d of 3", returned.Load(), len(got))
		}
	})
}

func TestHandlerPublishesAndSubscribes(t *testing.T) {
	b := newBus(t)
	ping := newTopic[int](t, b, "ping")
	pong := newTopic[int](t, b, "pong")
	done := make(chan int, 1)
	var subs sync.WaitGroup
	subs.Add(1)
	// The ping handler publishes to its own topic (with a tiny queue, so
	// the Block policy is exercised), publishes to pong, and subscribes.
	ping.Subscribe(func(ctx context.Context, m bus.Message[int]) error {
		if m.Value == 1 {
			if _, err := pong.Subscribe(func(_ context.Context, m bus.Message[int]) error {
				done <- m.Value
				return nil
			}); err != nil {
				return err
			}
			subs.Done()
		}
		if m.Value < 50 {
			if _, err := ping.Publish(ctx, m.Value+1); err != nil && !errors.Is(err, bus.ErrQueueFull) {
				return err
			}
			return nil
		}
		_, err := pong.Publish(ctx, m.Value)
		return err
	}, bus.QueueSize(1))
	publish(t, ping, 1)
	subs.Wait()
	if v := recv(t, done); v != 50 {
		t.Fatalf("pong got %d, want 50", v)
	}
}

func TestHandlerPublishingIntoItsOwnFullQueue(t *testing.T) {
	b := newBus(t)
	tp := newTopic[int](t, b, "self")
	errs := make(chan error, 1)
	release := make(chan struct{})
	tp.Subscribe(func(ctx context.Context, m bus.Message[int]) error {
		if m.Value == 1 {
			<-release
			_, err := tp.Publish(ctx, 100)
			errs <- err
		}
		return nil
	}, bus.QueueSize(1))
	publish(t, tp, 1)
	publish(t, tp, 2) // fills the queue while the handler holds 1
	close(release)
	if err := recv(t, errs); !errors.Is(err, bus.ErrQueueFull) {
		t.Fatalf("handler publishing into its own full queue: %v, want ErrQueueFull", err)
	}
}

func TestCloseIsIdempotentAndFinal(t *testing.T) {
	b, err := bus.New()
	if err != nil {
		t.Fatal(err)
	}
	tp := newTopic[int](t, b, "c")
	sub, _ := tp.Subscribe(func(context.Context, bus.Message[int]) error { return nil })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	<-sub.Done()
	ctx := context.Background()
	for name, err := range map[string]error{
		"Publish":    func() error { _, err := tp.Publish(ctx, 1); return err }(),
		"PublishRaw": func() error { _, err := b.PublishRaw(ctx, "c", []byte("1")); return err }(),
		"Subscribe": func() error {
			_, err := tp.Subscribe(func(context.Context, bus.Message[int]) error { return nil })
			return err
		}(),
		"NewTopic": func() error { _, err := bus.NewTopic[int](b, "d"); return err }(),
		"Member":   func() error { _, err := b.Member("m"); return err }(),
		"Read":     func() error { _, err := b.Read(ctx, "c", 1, 1); return err }(),
		"Request":  func() error { _, err := b.RequestRaw(ctx, "c", nil); return err }(),
	} {
		if !errors.Is(err, bus.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

func TestPublishConcurrentWithClose(t *testing.T) {
	for range 20 {
		b, err := bus.New()
		if err != nil {
			t.Fatal(err)
		}
		tp, _ := bus.NewTopic[int](b, "race")
		for range 3 {
			tp.Subscribe(func(context.Context, bus.Message[int]) error { return nil }, bus.QueueSize(4))
		}
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					if _, err := tp.Publish(context.Background(), i); err != nil {
						if !errors.Is(err, bus.ErrClosed) {
							t.Errorf("publisher %d: %v, want ErrClosed", w, err)
						}
						return
					}
				}
			})
		}
		time.Sleep(time.Millisecond)
		b.Close()
		wg.Wait()
	}
	// goleak in TestMain checks that nothing was left running.
}

func TestShutdownDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, _ := bus.New()
		tp, _ := bus.NewTopic[int](b, "drain")
		var handled atomic.Int32
		tp.Subscribe(func(context.Context, bus.Message[int]) error {
			time.Sleep(time.Second)
			handled.Add(1)
			return nil
		})
		for i := range 5 {
			tp.Publish(context.Background(), i)
		}
		if err := b.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := handled.Load(); n != 5 {
			t.Fatalf("Shutdown returned after %d of 5 deliveries", n)
		}
		if _, err := tp.Publish(context.Background(), 9); !errors.Is(err, bus.ErrClosed) {
			t.Fatalf("publish after Shutdown: %v", err)
		}
	})
}

func TestShutdownDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, _ := bus.New()
		tp, _ := bus.NewTopic[int](b, "stuck")
		tp.Subscribe(func(ctx context.Context, _ bus.Message[int]) error {
			<-ctx.Done() // ends when the bus closes
			return ctx.Err()
		}, bus.AckWait(time.Hour))
		tp.Publish(context.Background(), 1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown past its deadline: %v, want DeadlineExceeded", err)
		}
	})
}

func TestUnsubscribeFromOwnHandler(t *testing.T) {
	b := newBus(t)
	tp := newTopic[int](t, b, "u")
	var sub *bus.Subscription
	ready := make(chan struct{})
	calls := make(chan int, 10)
	sub, _ = tp.Subscribe(func(_ context.Context, m bus.Message[int]) error {
		<-ready
		calls <- m.Value
		return sub.Unsubscribe()
	})
	close(ready)
	publish(t, tp, 1)
	publish(t, tp, 2)
	<-sub.Done()
	if len(calls) != 1 {
		t.Fatalf("handler ran %d times after unsubscribing itself, want 1", len(calls))
	}
}

func TestStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus(t)
		tp := newTopic[int](t, b, "st")
		tp.Subscribe(func(_ context.Context, m bus.Message[int]) error {
			if m.Value == 2 {
				return errors.New("no")
			}
			return nil
		}, bus.MaxDeliver(2), bus.Backoff(func(int) time.Duration { return time.Millisecond }))
		for i := 1; i <= 3; i++ {
			publish(t, tp, i)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		st := b.Stats()
		var ts bus.TopicStats
		for _, x := range st.Topics {
			if x.Name == "st" {
				ts = x
			}
		}
		if ts.Published != 3 || ts.Delivered != 3 || ts.Redelivered != 1 || ts.DeadLettered != 1 || ts.Last != 3 || ts.History != 3 {
			t.Fatalf("topic stats = %+v", ts)
		}
		if len(st.Subscriptions) != 1 || st.Subscriptions[0].Delivered != 3 || st.Subscriptions[0].QueueLen != 0 {
			t.Fatalf("subscription stats = %+v", st.Subscriptions)
		}
	})
}

// MaxTopics bounds the topics a bus holds, its own room topics included;
// what exists keeps working.
func TestMaxTopics(t *testing.T) {
	b := newBus(t, bus.MaxTopics(3))
	ctx := context.Background()
	a := newTopic[int](t, b, "a")
	newTopic[int](t, b, "b")
	m, err := b.Member("m")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Join(ctx, "r1"); err != nil { // "$rooms.r1" is the third
		t.Fatal(err)
	}
	if _, err := bus.NewTopic[int](b, "c"); !errors.Is(err, bus.ErrTooManyTopics) {
		t.Fatalf("a fourth topic: %v, want ErrTooManyTopics", err)
	}
	if _, err := b.PublishRaw(ctx, "d", []byte("1")); !errors.Is(err, bus.ErrTooManyTopics) {
		t.Fatalf("PublishRaw to a new topic: %v, want ErrTooManyTopics", err)
	}
	if _, err := b.Subscribe("e", func(context.Context, bus.Message[any]) error { return nil }, bus.StartFirst()); !errors.Is(err, bus.ErrTooManyTopics) {
		t.Fatalf("a subscription that needs a new topic: %v, want ErrTooManyTopics", err)
	}
	if err := m.Join(ctx, "r2"); !errors.Is(err, bus.ErrTooManyTopics) {
		t.Fatalf("joining a new room: %v, want ErrTooManyTopics", err)
	}
	if got := m.Rooms(); len(got) != 1 || got[0] != "r1" {
		t.Fatalf("after the refused join the member is in %v", got)
	}
	if _, err := a.Publish(ctx, 1); err != nil {
		t.Fatalf("publishing to an existing topic: %v", err)
	}
	if err := m.Join(ctx, "r1"); err != nil {
		t.Fatalf("joining a room whose topic exists: %v", err)
	}
	if _, err := bus.New(bus.MaxTopics(-1)); !errors.Is(err, bus.ErrInvalidOption) {
		t.Fatalf("MaxTopics(-1): %v, want ErrInvalidOption", err)
	}
}
