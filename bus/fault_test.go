package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/courierbus/courier/bus"
)

// deadLetters collects the dead letters of topic.
func deadLetters(t *testing.T, b *bus.Bus, topic string) *[]bus.DeadLetter {
	t.Helper()
	var dead []bus.DeadLetter
	if _, err := b.Subscribe(bus.DeadLetterTopic(topic), func(_ context.Context, m bus.Message[any]) error {
		dead = append(dead, m.Value.(bus.DeadLetter))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return &dead
}

// TestFaultHandlerPanics: a handler that panics on every attempt is
// retried, then dead-lettered after MaxDeliver; the messages after it are
// handled and the process stays up.
func TestFaultHandlerPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus(t)
		tp := newTopic[string](t, b, "jobs")
		dead := deadLetters(t, b, "jobs")
		var tries []string
		sub, err := tp.Subscribe(func(_ context.Context, m bus.Message[string]) error {
			tries = append(tries, fmt.Sprintf("%s/%d", m.Value, m.Attempt()))
			if m.Value == "bad" {
				panic("cannot do it")
			}
			return nil
		}, bus.MaxDeliver(3))
		if err != nil {
			t.Fatal(err)
		}
		publish(t, tp, "bad")
		publish(t, tp, "good")
		time.Sleep(time.Minute)
		synctest.Wait()
		if got, want := fmt.Sprint(tries), "[bad/1 bad/2 bad/3 good/1]"; got != want {
			t.Fatalf("attempts %s, want %s", got, want)
		}
		if len(*dead) != 1 {
			t.Fatalf("%d dead letters, want 1", len(*dead))
		}
		if d := (*dead)[0]; d.Seq != 1 || d.Attempts != 3 || !strings.Contains(d.Error, "cannot do it") {
			t.Fatalf("dead letter = %+v, want seq 1 after 3 attempts with the panic's value", d)
		}
		if st := sub.Stats(); st.DeadLettered != 1 || st.Delivered != 2 {
			t.Fatalf("stats = %+v", st)
		}
	})
}

// TestFaultHandlerBlocks: a handler that blocks until its context ends
// is cut off by AckWait and retried, then dead-lettered, while the
// subscription's other workers go on; Close returns. A handler that
// ignores its context holds its worker, and Close waits for it.
func TestFaultHandlerBlocks(t *testing.T) {
	t.Run("until its context ends", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b, err := bus.New()
			if err != nil {
				t.Fatal(err)
			}
			tp := newTopic[string](t, b, "jobs")
			dead := deadLetters(t, b, "jobs")
			var mu sync.Mutex
			var handled []string
			var stuck atomic.Int32
			_, err = tp.Subscribe(func(ctx context.Context, m bus.Message[string]) error {
				if m.Value == "stuck" {
					stuck.Add(1)
					<-ctx.Done()
					return ctx.Err()
				}
				mu.Lock()
				handled = append(handled, m.Value)
				mu.Unlock()
				return nil
			}, bus.AckWait(time.Second), bus.MaxDeliver(3), bus.MaxInFlight(2))
			if err != nil {
				t.Fatal(err)
			}
			publish(t, tp, "stuck")
			synctest.Wait()
			for i := range 10 {
				publish(t, tp, fmt.Sprint(i))
			}
			synctest.Wait()
			mu.Lock()
			if len(handled) != 10 {
				t.Fatalf("the other worker handled %d of 10 while one was stuck", len(handled))
			}
			mu.Unlock()
			time.Sleep(time.Minute)
			synctest.Wait()
			if n := stuck.Load(); n != 3 {
				t.Fatalf("stuck handler ran %d times, want 3 (MaxDeliver)", n)
			}
			if len(*dead) != 1 || !strings.Contains((*dead)[0].Error, "deadline") {
				t.Fatalf("dead letters %+v, want one, for the deadline", *dead)
			}
			publish(t, tp, "stuck") // held when the bus closes
			synctest.Wait()
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("returns nil past AckWait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBus(t)
			tp := newTopic[int](t, b, "slow")
			var attempts []int
			_, err := tp.Subscribe(func(_ context.Context, m bus.Message[int]) error {
				attempts = append(attempts, m.Attempt())
				if m.Attempt() == 1 {
					time.Sleep(5 * time.Second) // never looks at its deadline
				}
				return nil
			}, bus.AckWait(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			publish(t, tp, 1)
			time.Sleep(time.Minute)
			synctest.Wait()
			if fmt.Sprint(attempts) != "[1 2]" {
				t.Fatalf("attempts %v, want [1 2]: a delivery past its deadline counts as failed", attempts)
			}
		})
	})
	t.Run("ignoring its context", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b, err := bus.New()
			if err != nil {
				t.Fatal(err)
			}
			tp := newTopic[int](t, b, "stuck")
			release := make(chan struct{})
			var calls atomic.Int32
			tp.Subscribe(func(context.Context, bus.Message[int]) error {
				calls.Add(1)
				<-release
				return nil
			}, bus.AckWait(time.Second))
			publish(t, tp, 1)
			time.Sleep(time.Hour)
			synctest.Wait()
			if n := calls.Load(); n != 1 {
				t.Fatalf("handler called %d times while its first call still runs, want 1", n)
			}
			var closed atomic.Bool
			go func() {
				b.Close()
				closed.Store(true)
			}()
			synctest.Wait()
			if closed.Load() {
				t.Fatal("Close returned while a handler it owns still runs")
			}
			close(release)
			synctest.Wait()
			if !closed.Load() {
				t.Fatal("Close did not return once the handler did")
			}
		})
	})
}

// loadBus runs publishers and subscribers of every kind on b until stop
// is closed or publishing fails. It returns the sequence numbers each
// at-least-once topic acknowledged, per topic, and what each counting
// subscriber handled.
type loadBus struct {
	b         *bus.Bus
	wg        sync.WaitGroup
	mu        sync.Mutex
	acked     map[string]uint64 // topic → highest seq a publisher got back
	handled   map[string]uint64 // topic → messages the plain subscriber handled
	errs      []error
	published atomic.Int64
}

func startLoad(t *testing.T, b *bus.Bus, stop <-chan struct{}) *loadBus {
	t.Helper()
	l := &loadBus{b: b, acked: map[string]uint64{}, handled: map[string]uint64{}}
	topics := []string{"load.a", "load.b", "load.c"}
	for _, name := range topics {
		tp := newTopic[int](t, b, name)
		// The counting subscriber: plain at-least-once, checks order and
		// counts what has a sequence number.
		var next uint64 = 1
		if _, err := tp.Subscribe(func(_ context.Context, m bus.Message[int]) error {
			if m.Seq() == 0 {
				return nil // volatile: may be dropped
			}
			if m.Seq() != next {
				l.fail(fmt.Errorf("%s: seq %d, want %d", name, m.Seq(), next))
			}
			next = m.Seq() + 1
			l.mu.Lock()
			l.handled[name]++
			l.mu.Unlock()
			return nil
		}, bus.QueueSize(64)); err != nil {
			t.Fatal(err)
		}
		// Others: a queue group, a volatile one, several workers.
		for range 2 {
			tp.Subscribe(func(context.Context, bus.Message[int]) error { return nil }, bus.QueueGroup("g"), bus.QueueSize(16))
		}
		tp.Subscribe(func(context.Context, bus.Message[int]) error { return nil }, bus.Volatile(), bus.QueueSize(8))
		tp.Subscribe(func(context.Context, bus.Message[int]) error { return nil }, bus.MaxInFlight(4))
		for w := range 2 {
			l.wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					var opts []bus.PublishOption
					if i%10 == 9 {
						opts = append(opts, bus.Volatile())
					}
					seq, err := tp.Publish(context.Background(), w*1_000_000+i, opts...)
					if err != nil {
						if !errors.Is(err, bus.ErrClosed) {
							l.fail(fmt.Errorf("publish to %s: %w", name, err))
						}
						return
					}
					l.published.Add(1)
					if seq != 0 {
						l.mu.Lock()
						l.acked[name] = max(l.acked[name], seq)
						l.mu.Unlock()
					}
				}
			})
		}
	}
	b.Subscribe("load.>", func(context.Context, bus.Message[any]) error { return nil }, bus.QueueSize(32))
	return l
}

func (l *loadBus) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, err)
	}
}

// waitPublished waits until n messages were published.
func (l *loadBus) waitPublished(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for l.published.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d published", l.published.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFaultCloseUnderLoad closes and shuts down buses while publishers and
// subscribers of every kind run: Close and Shutdown return, publishers get
// ErrClosed, goleak in TestMain finds nothing left, and after Shutdown the
// plain subscriber has handled every message a publish acknowledged, in
// order.
func TestFaultCloseUnderLoad(t *testing.T) {
	for _, shutdown := range []bool{false, true} {
		name := "Close"
		if shutdown {
			name = "Shutdown"
		}
		t.Run(name, func(t *testing.T) {
			for round := range 5 {
				b, err := bus.New()
				if err != nil {
					t.Fatal(err)
				}
				stop := make(chan struct{})
				l := startLoad(t, b, stop)
				l.waitPublished(t, int64(500+round*500))
				if shutdown {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					err = b.Shutdown(ctx)
					cancel()
				} else {
					err = b.Close()
				}
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				close(stop)
				l.wg.Wait()
				l.mu.Lock()
				for _, err := range l.errs {
					t.Errorf("round %d: %v", round, err)
				}
				if shutdown {
					for topic, seq := range l.acked {
						if l.handled[topic] != seq {
							t.Errorf("round %d: %s: handled %d, but publishes acknowledged up to seq %d", round, topic, l.handled[topic], seq)
						}
					}
				}
				l.mu.Unlock()
			}
		})
	}
}

// TestFaultClockJump moves the fake clock on by hours while deliveries
// wait for their backoff and AckWait: each timer fires once, at its time,
// however far the clock jumps; the attempt count and dead letters come out
// as without a jump; message times follow the jump and never go back.
func TestFaultClockJump(t *testing.T) {
	t.Run("message times", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBus(t)
			tp := newTopic[int](t, b, "times")
			var times []time.Time
			tp.Subscribe(func(_ context.Context, m bus.Message[int]) error {
				times = append(times, m.Time())
				return nil
			})
			jumps := []time.Duration{0, 0, time.Microsecond, 3 * time.Hour, 0, time.Millisecond, 26 * time.Hour, 0}
			for i, d := range jumps {
				time.Sleep(d)
				publish(t, tp, i)
				synctest.Wait()
			}
			for i := 1; i < len(times); i++ {
				if times[i].Before(times[i-1]) {
					t.Fatalf("message %d's time %v is before message %d's %v", i, times[i], i-1, times[i-1])
				}
				if gap := times[i].Sub(times[i-1]); gap < jumps[i]-time.Millisecond {
					t.Fatalf("message %d came %v after the one before, which was published %v earlier", i, gap, jumps[i])
				}
			}
		})
	})
	t.Run("backoff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBus(t)
			tp := newTopic[int](t, b, "bo")
			dead := deadLetters(t, b, "bo")
			start := time.Now()
			var at []time.Duration
			tp.Subscribe(func(_ context.Context, m bus.Message[int]) error {
				at = append(at, time.Since(start))
				return errors.New("fail")
			}, bus.MaxDeliver(4), bus.Backoff(bus.ExponentialBackoff(time.Second, time.Hour)))
			publish(t, tp, 1)
			time.Sleep(5 * time.Hour) // the clock jumps past every retry
			synctest.Wait()
			want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}
			if fmt.Sprint(at) != fmt.Sprint(want) || len(*dead) != 1 {
				t.Fatalf("attempts at %v with %d dead letters, want %v and 1", at, len(*dead), want)
			}
		})
	})
	t.Run("AckWait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBus(t)
			tp := newTopic[int](t, b, "aw")
			dead := deadLetters(t, b, "aw")
			var attempts atomic.Int32
			var deadlines []time.Duration
			tp.Subscribe(func(ctx context.Context, m bus.Message[int]) error {
				attempts.Add(1)
				if m.Value == 1 { // manual: never settles
					return nil
				}
				d, _ := ctx.Deadline()
				deadlines = append(deadlines, time.Until(d))
				time.Sleep(2 * time.Hour) // the clock jumps while it runs
				if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("after the jump the handler's context says %v, want DeadlineExceeded", err)
				}
				return ctx.Err()
			}, bus.ManualAck(), bus.AckWait(30*time.Second), bus.MaxDeliver(3),
				bus.Backoff(func(int) time.Duration { return time.Second }))
			publish(t, tp, 1)
			time.Sleep(10 * time.Hour)
			synctest.Wait()
			if n := attempts.Load(); n != 3 || len(*dead) != 1 {
				t.Fatalf("%d attempts, %d dead letters for an unsettled message, want 3 and 1", n, len(*dead))
			}
			publish(t, tp, 2)
			time.Sleep(10 * time.Hour)
			synctest.Wait()
			if n := attempts.Load(); n != 6 || len(*dead) != 2 {
				t.Fatalf("%d attempts, %d dead letters, want 6 and 2", n, len(*dead))
			}
			for _, d := range deadlines {
				if d != 30*time.Second {
					t.Fatalf("handler deadlines %v, want 30s each", deadlines)
				}
			}
		})
	})
}
