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

func TestSequenceFromOneWithoutGaps(t *testing.T) {
	b := newBus(t)
	tp := newTopic[int](t, b, "seq")
	var wg sync.WaitGroup
	seen := make([]atomic.Bool, 401)
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				seq, err := tp.Publish(context.Background(), w*100+i)
				if err != nil || seq == 0 || seq > 400 || seen[seq].Swap(true) {
					t.Errorf("Publish = %d, %v: out of range or given twice", seq, err)
				}
			}
		})
	}
	wg.Wait()
}

func TestTypedTopicRebinding(t *testing.T) {
	b := newBus(t)
	if _, err := bus.NewTopic[string](b, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.NewTopic[string](b, "x"); err != nil {
		t.Fatalf("same type again: %v", err)
	}
	if _, err := bus.NewTopic[int](b, "x"); !errors.Is(err, bus.ErrTypeMismatch) {
		t.Fatalf("other type: %v, want ErrTypeMismatch", err)
	}
	if _, err := bus.NewTopic[int](b, "a.*"); !errors.Is(err, bus.ErrInvalidTopic) {
		t.Fatalf("pattern as topic: %v, want ErrInvalidTopic", err)
	}
	if _, err := bus.NewTopic[int](b, "$mine"); !errors.Is(err, bus.ErrInvalidTopic) {
		t.Fatalf("reserved name: %v, want ErrInvalidTopic", err)
	}
	if _, err := b.PublishRaw(context.Background(), "x", []byte(`42`)); !errors.Is(err, bus.ErrTypeMismatch) {
		t.Fatalf("raw publish of a number to a string topic: %v, want ErrTypeMismatch", err)
	}
	if _, err := b.PublishRaw(context.Background(), "untyped", []byte(`{bad`)); !errors.Is(err, bus.ErrTypeMismatch) {
		t.Fatalf("raw publish of bad JSON: %v, want ErrTypeMismatch", err)
	}
}

type point struct{ X, Y int }

// countingCodec counts encodes, to show bytes are made once per message.
type countingCodec struct{ n atomic.Int64 }

func (c *countingCodec) Encode(v any) ([]byte, error) {
	c.n.Add(1)
	return bus.JSON.Encode(v)
}
func (c *countingCodec) Decode(data []byte, v any) error { return bus.JSON.Decode(data, v) }

func TestValuesPassedAndBytesMadeOnce(t *testing.T) {
	b := newBus(t)
	codec := &countingCodec{}
	tp := newTopic[*point](t, b, "pts", bus.WithCodec(codec))
	p := &point{1, 2}
	typed := make(chan *point, 1)
	raw := make(chan string, 3)
	if _, err := tp.Subscribe(func(_ context.Context, m bus.Message[*point]) error {
		typed <- m.Value
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := b.Subscribe("pts", func(_ context.Context, m bus.Message[any]) error {
			data, err := m.Data()
			if err != nil {
				return err
			}
			if m.Value.(*point) != p {
				t.Error("wildcard subscriber got a copy, not the value")
			}
			raw <- string(data)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, tp, p)
	if got := recv(t, typed); got != p {
		t.Fatal("typed subscriber got a different pointer: the value was not passed in-process")
	}
	for range 3 {
		if got := recv(t, raw); got != `{"X":1,"Y":2}` {
			t.Fatalf("Data = %s", got)
		}
	}
	if n := codec.n.Load(); n != 1 {
		t.Fatalf("value encoded %d times, want 1", n)
	}
}

func TestOrderingWithFailingHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus(t)
		tp := newTopic[int](t, b, "ord")
		var got []string
		var mu sync.Mutex
		_, err := tp.Subscribe(func(_ context.Context, m bus.Message[int]) error {
			mu.Lock()
			got = append(got, fmt.Sprintf("%d#%d", m.Value, m.Attempt()))
			mu.Unlock()
			if m.Value%3 == 0 && m.Attempt() < 3 {
				return errors.New("not yet")
			}
			return nil
		}, bus.Backoff(func(int) time.Duration { return time.Second }))
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 7; i++ {
			publish(t, tp, i)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		want := "[1#1 2#1 3#1 3#2 3#3 4#1 5#1 6#1 6#2 6#3 7#1]"
		mu.Lock()
		defer mu.Unlock()
		if fmt.Sprint(got) != want {
			t.Fatalf("deliveries = %v\nwant          %v", got, want)
		}
	})
}

func TestRedeliveryBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus(t)
		tp := newTopic[string](t, b, "bo")
		start := time.Now()
		var at []time.Duration
		_, err := tp.Subscribe(func(_ context.Context, m bus.Message[string]) error {
			at = append(at, time.Since(start))
			if m.Attempt() < 4 {
				return errors.New("fail")
			}
			return nil
		}, bus.Backoff(bus.ExponentialBackoff(100*time.Millisecond, 250*time.Millisecond)))
		if err != nil {
			t.Fatal(err)
		}
		publish(t, tp, "x")
		time.Sleep(time.Minute)
		synctest.Wait()
		want := []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond, 550 * time.Millisecond}
		if fmt.Sprint(at) != fmt.Sprint(want) {
			t.Fatalf("attempts at %v, want %v", at, want)
		}
	})
}

func TestPanicIsRecoveredAndRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus(t)
		tp := newTopic[int](t, b, "p")
		var attempts atomic.Int32
		if _, err := tp.Subscribe(func(_ context.Context, m bus.Message[int]) error {
			if attempts.Add(1) == 1 {
				panic("boom")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		publish(t, tp, 1)
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := attempts.Load(); n != 2 {
			t.Fatalf("attempts = %d, want 2 (panic, then success)", n)
		}
	})
}

func TestDeadLetter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus(t)
		tp := newTopic[string](t, b, "jobs")
		var dead []bus.DeadLetter
		if _, err := b.Subscribe(bus.DeadLetterTopic("jobs"), func(_ context.Context, m bus.Message[any]) error {
			dead = append(dead, m.Value.(bus.DeadLetter))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var tries atomic.Int32
		sub, err := tp.Subscribe(func(_ context.Context, m bus.Message[string]) error {
			tries.Add(1)
			if m.Value == "bad" {
				return errors.New("cannot do it")
			}
			return nil
		}, bus.MaxDeliver(3), bus.Backoff(func(int) time.Duration { return time.Millisecond }))
		if err != nil {
			t.Fatal(err)
		}
		publish(t, tp, "bad")
		publish(t, tp, "good")
		time.Sleep(time.Minute)
		synctest.Wait()
		if len(dead) != 1 {
			t.Fatalf("%d dead letters, want 1", len(dead))
		}
		d := dead[0]
		if d.Topic != "jobs" || d.Seq != 1 || d.Attempts != 3 || d.Error != "cannot do it" || string(d.Data) != `"bad"` {
			t.Fatalf("dead letter = %+v", d)
		}
		if n := tries.Load(); n != 4 {
			t.Fatalf("handler ran %d times, want 3 for bad and 1 for good", n)
		}
		if st := sub.Stats(); st.DeadLettered != 1 || st.Delivered != 2 || st.Redelivered != 2 {
			t.Fatalf("stats = %+v", st)
		}
	})
}

func TestManualAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus(t)
		tp := newTopic[string](t, b, "m")
		held := make(chan bus.Message[string], 10)
		if _, err := tp.Subscribe(func(_ context.Context, m bus.Message[string]) error {
			held <- m
			return nil
		}, bus.ManualAck(), bus.AckWait(10*time.Second), bus.MaxDeliver(10),
			bus.Backoff(func(int) time.Duration { return time.Second })); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"ack", "nack", "slow", "term"} {
			publish(t, tp, v)
		}
		type step struct {
			value   string
			attempt int
		}
		var steps []step
		for len(steps) < 6 {
			m := <-held
			steps = append(steps, step{m.Value, m.Attempt()})
			switch {
			case m.Value == "ack":
				if err := m.Ack(); err != nil {
					t.Fatal(err)
				}
				if err := m.Ack(); !errors.Is(err, bus.ErrAlreadyAcked) {
					t.Fatalf("second Ack: %v, want ErrAlreadyAcked", err)
				}
			case m.Value == "nack" && m.Attempt() == 1:
				m.Nack(0)
			case m.Value == "nack":
				m.Ack()
			case m.Value == "slow" && m.Attempt() == 1:
				// Keep it alive past AckWait with InProgress, then let it lapse.
				time.Sleep(8 * time.Second)
				m.InProgress()
				time.Sleep(8 * time.Second)
				if len(held) != 0 {
					t.Fatal("redelivered although InProgress extended the deadline")
				}
			case m.Value == "slow":
				m.Ack()
			case m.Value == "term":
				m.Term()
			}
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		want := "[{ack 1} {nack 1} {nack 2} {slow 1} {slow 2} {term 1}]"
		if fmt.Sprint(steps) != want || len(held) != 0 {
			t.Fatalf("steps = %v (+%d more)\nwant    %v", steps, len(held), want)
		}
	})
}

func TestAutoAckMessageRefusesManualCalls(t *testing.T) {
	b := newBus(t)
	tp := newTopic[int](t, b, "auto")
	errs := make(chan error, 1)
	tp.Subscribe(func(_ context.Context, m bus.Message[int]) error {
		errs <- m.Ack()
		return nil
	})
	publish(t, tp, 1)
	if err := recv(t, errs); !errors.Is(err, bus.ErrNotManual) {
		t.Fatalf("Ack on auto-ack message: %v, want ErrNotManual", err)
	}
}

// TestHandlerContextHasAckWaitDeadline: a delivery's context has the
// deadline AckWait from the start of the delivery, whenever the handler
// first looks at it, and a handler that runs past it fails that attempt,
// even when the delivery before it ended just before.
func TestHandlerContextHasAckWaitDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus(t)
		tp := newTopic[int](t, b, "dl")
		type look struct {
			value, attempt int
			deadline       time.Duration // from the handler's start
			waited         time.Duration // until Done was closed
			err            error
		}
		looks := make(chan look, 10)
		tp.Subscribe(func(ctx context.Context, m bus.Message[int]) error {
			start := time.Now()
			switch {
			case m.Value == 1:
				time.Sleep(2 * time.Second) // looks late, then takes 3s more
				dl, _ := ctx.Deadline()
				<-ctx.Done()
				looks <- look{1, m.Attempt(), dl.Sub(start), time.Since(start), ctx.Err()}
				return nil
			case m.Value == 2 && m.Attempt() == 1:
				time.Sleep(2 * time.Second) // ends 2s into 3's AckWait
			case m.Value == 3 && m.Attempt() == 1:
				time.Sleep(3*time.Second + time.Millisecond) // past its AckWait, never looking
			}
			looks <- look{value: m.Value, attempt: m.Attempt()}
			return nil
		}, bus.AckWait(3*time.Second), bus.Backoff(func(int) time.Duration { return time.Second }))
		publish(t, tp, 1)
		publish(t, tp, 2)
		publish(t, tp, 3)
		time.Sleep(time.Minute)
		synctest.Wait()
		close(looks)
		var got []look
		for l := range looks {
			got = append(got, l)
		}
		want := []look{
			{1, 1, 3 * time.Second, 3 * time.Second, context.DeadlineExceeded},
			{1, 2, 3 * time.Second, 3 * time.Second, context.DeadlineExceeded},
			{1, 3, 3 * time.Second, 3 * time.Second, context.DeadlineExceeded},
			{1, 4, 3 * time.Second, 3 * time.Second, context.DeadlineExceeded},
			{1, 5, 3 * time.Second, 3 * time.Second, context.DeadlineExceeded},
			{value: 2, attempt: 1},
			{value: 3, attempt: 1},
			{value: 3, attempt: 2},
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("deliveries:\n got %v\nwant %v", got, want)
		}
	})
}

// TestHandlerContextIsPerDelivery: each delivery gets a context of its
// own, which a handler may keep: it ends (context.Canceled) when the
// handler returns, and ending it does not touch the next delivery's.
func TestHandlerContextIsPerDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus(t)
		tp := newTopic[int](t, b, "keep")
		var kept []context.Context
		var during []error
		tp.Subscribe(func(ctx context.Context, m bus.Message[int]) error {
			kept = append(kept, ctx)
			during = append(during, ctx.Err())
			return nil
		}, bus.AckWait(time.Hour))
		for i := range 3 {
			publish(t, tp, i)
		}
		synctest.Wait()
		if len(kept) != 3 {
			t.Fatalf("%d deliveries, want 3", len(kept))
		}
		if kept[0] == kept[1] || kept[1] == kept[2] {
			t.Fatalf("deliveries share a context")
		}
		for i, ctx := range kept {
			if during[i] != nil {
				t.Errorf("delivery %d: Err while the handler ran: %v, want nil", i, during[i])
			}
			select {
			case <-ctx.Done():
			default:
				t.Errorf("delivery %d: Done not closed after the handler returned", i)
			}
			if err := ctx.Err(); err != context.Canceled {
				t.Errorf("delivery %d: Err after the handler returned: %v, want context.Canceled", i, err)
			}
			if ctx.Value(struct{}{}) != nil {
				t.Errorf("delivery %d: unexpected value", i)
			}
		}
	})
}

func TestQueueGroupDeliversToExactlyOne(t *testing.T) {
	b := newBus(t)
	tp := newTopic[int](t, b, "work")
	const n = 300
	var mu sync.Mutex
	count := map[int]int{}
	perMember := make([]int, 3)
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range 3 {
		if _, err := tp.Subscribe(func(_ context.Context, m bus.Message[int]) error {
			mu.Lock()
			count[m.Value]++
			perMember[i]++
			mu.Unlock()
			wg.Done()
			return nil
		}, bus.QueueGroup("workers")); err != nil {
			t.Fatal(err)
		}
	}
	plain := make(chan int, n)
	tp.Subscribe(func(_ context.Context, m bus.Message[int]) error { plain <- m.Value; return nil })
	for i := range n {
		publish(t, tp, i)
	}
	wg.Wait()
	for range n {
		recv(t, plain)
	}
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		if count[i] != 1 {
			t.Fatalf("message %d delivered %d times in the group, want 1", i, count[i])
		}
	}
	for i, c := range perMember {
		if c == 0 {
			t.Errorf("group member %d got nothing: %v", i, perMember)
		}
	}
}

func TestVolatile(t *testing.T) {
	b := newBus(t)
	tp := newTopic[int](t, b, "v")
	got := make(chan int, 10)
	tp.Subscribe(func(_ context.Context, m bus.Message[int]) error { got <- m.Value; return errors.New("ignored") },
		bus.Volatile())
	seq := publish(t, tp, 1, bus.Volatile())
	if seq != 0 {
		t.Fatalf("volatile publish seq = %d, want 0", seq)
	}
	if v := recv(t, got); v != 1 {
		t.Fatal(v)
	}
	none(t, got) // no retry for a volatile subscription
	if _, err := tp.Read(context.Background(), 1, 10); err != nil {
		t.Fatal(err)
	} else if msgs, _ := tp.Read(context.Background(), 1, 10); len(msgs) != 0 {
		t.Fatalf("volatile publish kept in history: %d messages", len(msgs))
	}
}

func TestDedupe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus(t, bus.DedupeWindow(time.Minute))
		tp := newTopic[string](t, b, "d")
		var got []string
		tp.Subscribe(func(_ context.Context, m bus.Message[string]) error { got = append(got, m.Value); return nil })
		s1 := publish(t, tp, "first", bus.PublisherID("p1"))
		s2 := publish(t, tp, "again", bus.PublisherID("p1"))
		s3 := publish(t, tp, "other", bus.PublisherID("p2"))
		time.Sleep(2 * time.Minute)
		s4 := publish(t, tp, "after window", bus.PublisherID("p1"))
		synctest.Wait()
		if s1 != 1 || s2 != 1 || s3 != 2 || s4 != 3 {
			t.Fatalf("seqs = %d %d %d %d, want 1 1 2 3", s1, s2, s3, s4)
		}
		if fmt.Sprint(got) != "[first other after window]" {
			t.Fatalf("delivered %v", got)
		}
	})
}

func TestHeadersAndMetadata(t *testing.T) {
	b := newBus(t)
	tp := newTopic[string](t, b, "h")
	got := make(chan bus.Message[string], 1)
	tp.Subscribe(func(_ context.Context, m bus.Message[string]) error { got <- m; return nil })
	before := time.Now()
	publish(t, tp, "x", bus.Headers(map[string]string{"trace": "t1"}), bus.PublisherID("pub"))
	m := recv(t, got)
	if m.Topic() != "h" || m.Seq() != 1 || m.Header("trace") != "t1" || m.PublisherID() != "pub" ||
		m.Time().Before(before) || m.Position() != (bus.Position{Epoch: tp.Epoch(), Seq: 1}) || m.Attempt() != 1 {
		t.Fatalf("metadata wrong: topic %q seq %d hdr %q pub %q pos %v", m.Topic(), m.Seq(), m.Header("trace"), m.PublisherID(), m.Position())
	}
}

func TestMaxInFlightConcurrency(t *testing.T) {
	b := newBus(t)
	tp := newTopic[int](t, b, "mif")
	release := make(chan struct{})
	var running, peak atomic.Int32
	var done sync.WaitGroup
	done.Add(8)
	tp.Subscribe(func(_ context.Context, m bus.Message[int]) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		done.Done()
		return nil
	}, bus.MaxInFlight(4))
	for i := range 8 {
		publish(t, tp, i)
	}
	for peak.Load() < 4 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	done.Wait()
	if p := peak.Load(); p != 4 {
		t.Fatalf("peak concurrency %d, want 4", p)
	}
}

func TestInvalidSubscribeOptions(t *testing.T) {
	b := newBus(t)
	tp := newTopic[int](t, b, "opt")
	h := func(context.Context, bus.Message[int]) error { return nil }
	for _, tc := range []struct {
		name string
		opts []bus.SubscribeOption
	}{
		{"drop for at-least-once", []bus.SubscribeOption{bus.OnFull(bus.DropOldest)}},
		{"zero queue", []bus.SubscribeOption{bus.QueueSize(0)}},
		{"zero max deliver", []bus.SubscribeOption{bus.MaxDeliver(0)}},
		{"durable volatile", []bus.SubscribeOption{bus.Durable("d"), bus.Volatile()}},
		{"bad durable name", []bus.SubscribeOption{bus.Durable("a b")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tp.Subscribe(h, tc.opts...); !errors.Is(err, bus.ErrInvalidOption) {
				t.Fatalf("got %v, want ErrInvalidOption", err)
			}
		})
	}
	if _, err := b.Subscribe("a.*", func(context.Context, bus.Message[any]) error { return nil }, bus.StartFirst()); !errors.Is(err, bus.ErrInvalidOption) {
		t.Fatalf("start position on a wildcard: %v, want ErrInvalidOption", err)
	}
	if _, err := b.Subscribe("a.b*", func(context.Context, bus.Message[any]) error { return nil }); !errors.Is(err, bus.ErrInvalidTopic) {
		t.Fatalf("bad pattern: %v, want ErrInvalidTopic", err)
	}
}

// TestPublishKeepsValueNotCopy holds what Publish documents: the bus keeps
// the value it was given, so a []byte buffer is shared with the history
// and with subscribers, and reusing it changes what they get.
func TestPublishKeepsValueNotCopy(t *testing.T) {
	b := newBus(t)
	tp := newTopic[[]byte](t, b, "bytes")
	got := make(chan []byte, 1)
	tp.Subscribe(func(_ context.Context, m bus.Message[[]byte]) error {
		got <- m.Value
		return nil
	})
	buf := []byte("one")
	publish(t, tp, buf)
	if v := recv(t, got); &v[0] != &buf[0] {
		t.Fatalf("subscriber got a copy of the published slice, want the slice itself")
	}
	copy(buf, "two") // the caller reuses its buffer, as Publish says not to
	msgs, err := tp.Read(context.Background(), 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if v := string(msgs[0].Value); v != "two" {
		t.Fatalf("Read after the buffer was reused: got %q, want %q (the value is kept, not copied)", v, "two")
	}
}
