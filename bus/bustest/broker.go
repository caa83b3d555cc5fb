package bustest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/courierbus/courier/bus"
)

// BrokerHarness tells the suite how to make buses that share a broker.
type BrokerHarness struct {
	// New returns n buses sharing one broker, each with its own side of
	// it, closed when the test ends. opts apply to every bus.
	New func(t *testing.T, n int, opts ...bus.Option) []*bus.Bus
}

// TestBroker runs every conformance test against the harness.
func TestBroker(t *testing.T, h BrokerHarness) {
	t.Run("PublishReachesEveryBusOnce", func(t *testing.T) { testPublish(t, h) })
	t.Run("ConcurrentPublishers", func(t *testing.T) { testConcurrent(t, h) })
	t.Run("Rooms", func(t *testing.T) { testRooms(t, h) })
	t.Run("QueueGroup", func(t *testing.T) { testQueueGroup(t, h) })
	t.Run("Request", func(t *testing.T) { testRequest(t, h) })
	t.Run("Durable", func(t *testing.T) { testDurable(t, h) })
	t.Run("Dedupe", func(t *testing.T) { testDedupe(t, h) })
	t.Run("Volatile", func(t *testing.T) { testVolatile(t, h) })
	t.Run("History", func(t *testing.T) { testHistory(t, h) })
	t.Run("HandlerPublishes", func(t *testing.T) { testHandlerPublishes(t, h) })
}

// Eventually fails the test if cond does not hold within 10 seconds.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func topic[T any](t *testing.T, b *bus.Bus, name string) *bus.Topic[T] {
	t.Helper()
	tp, err := bus.NewTopic[T](b, name)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// log records what a subscription handled.
type log[T any] struct {
	mu   sync.Mutex
	vals []T
	seqs []uint64
}

func (l *log[T]) handle(_ context.Context, m bus.Message[T]) error {
	l.mu.Lock()
	l.vals = append(l.vals, m.Value)
	l.seqs = append(l.seqs, m.Seq())
	l.mu.Unlock()
	return nil
}

func (l *log[T]) snapshot() ([]T, []uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.vals), slices.Clone(l.seqs)
}

func (l *log[T]) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.vals)
}

// A publish on any bus reaches the matching subscriptions on every bus,
// once; every bus sees a topic's messages in one order, with the same
// sequence numbers, and positions are equal everywhere.
func testPublish(t *testing.T, h BrokerHarness) {
	buses := h.New(t, 3)
	logs := make([]*log[string], 3)
	for i, b := range buses {
		logs[i] = &log[string]{}
		if _, err := topic[string](t, b, "chat.lobby").Subscribe(logs[i].handle); err != nil {
			t.Fatal(err)
		}
	}
	const per = 20
	var wg sync.WaitGroup
	for i, b := range buses {
		tp := topic[string](t, b, "chat.lobby")
		wg.Go(func() {
			for k := range per {
				if _, err := tp.Publish(context.Background(), fmt.Sprintf("%d-%d", i, k)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i, l := range logs {
		Eventually(t, fmt.Sprintf("bus %d has every message", i), func() bool { return l.len() >= 3*per })
	}
	time.Sleep(50 * time.Millisecond) // a repeat would show by now
	vals0, seqs0 := logs[0].snapshot()
	for i, l := range logs {
		vals, seqs := l.snapshot()
		if len(vals) != 3*per {
			t.Fatalf("bus %d handled %d messages, want %d", i, len(vals), 3*per)
		}
		for k, s := range seqs {
			if s != uint64(k+1) {
				t.Fatalf("bus %d: message %d has seq %d", i, k, s)
			}
		}
		if !slices.Equal(vals, vals0) || !slices.Equal(seqs, seqs0) {
			t.Fatalf("bus %d saw another order than bus 0", i)
		}
	}
	p0, _ := buses[0].Position(context.Background(), "chat.lobby")
	for i, b := range buses[1:] {
		if p, _ := b.Position(context.Background(), "chat.lobby"); p != p0 {
			t.Fatalf("bus %d position %+v, bus 0 %+v", i+1, p, p0)
		}
	}
}

// Many publishers on several buses, to one topic at once: every message
// once, numbers without gaps, one order on every bus.
func testConcurrent(t *testing.T, h BrokerHarness) {
	buses := h.New(t, 3)
	ctx := ctxT(t)
	logs := make([]*log[string], 3)
	for i, b := range buses {
		logs[i] = &log[string]{}
		if _, err := topic[string](t, b, "load.one").Subscribe(logs[i].handle, bus.QueueSize(4096)); err != nil {
			t.Fatal(err)
		}
	}
	const per = 100
	publishers := []int{0, 0, 0, 0, 0, 0, 0, 0, 1, 1} // eight on bus 0, two on bus 1
	var wg sync.WaitGroup
	for p, i := range publishers {
		tp := topic[string](t, buses[i], "load.one")
		wg.Go(func() {
			for k := range per {
				if _, err := tp.Publish(ctx, fmt.Sprintf("%d-%d", p, k)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := len(publishers) * per
	for i, l := range logs {
		Eventually(t, fmt.Sprintf("bus %d has every message", i), func() bool { return l.len() >= total })
	}
	vals0, _ := logs[0].snapshot()
	for i, l := range logs {
		vals, seqs := l.snapshot()
		seen := make(map[string]bool, len(vals))
		for k, v := range vals {
			if seqs[k] != uint64(k+1) || seen[v] {
				t.Fatalf("bus %d: delivery %d is %s with seq %d: a gap or a repeat", i, k, v, seqs[k])
			}
			seen[v] = true
		}
		if len(vals) != total || !slices.Equal(vals, vals0) {
			t.Fatalf("bus %d: %d messages, or another order than bus 0", i, len(vals))
		}
	}
}

// To(room) reaches the members of the room on every bus, once each;
// ExceptMember applies everywhere; RoomMembers lists every bus's members
// with their info; joins and leaves of other buses are events.
func testRooms(t *testing.T, h BrokerHarness) {
	buses := h.New(t, 3)
	ctx := ctxT(t)
	logs := make([]*log[string], 3)
	members := make([]*bus.Member, 3)
	var evMu sync.Mutex
	var events []bus.RoomEvent
	if _, err := buses[0].Subscribe(bus.RoomTopic("lobby"), func(_ context.Context, m bus.Message[any]) error {
		evMu.Lock()
		events = append(events, m.Value.(bus.RoomEvent))
		evMu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, b := range buses {
		m, err := b.Member(fmt.Sprintf("m%d", i))
		if err != nil {
			t.Fatal(err)
		}
		m.SetInfo(fmt.Sprintf("user%d", i))
		members[i] = m
		logs[i] = &log[string]{}
		if _, err := topic[string](t, b, "chat.msgs").Subscribe(logs[i].handle, bus.Owner(m)); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{0, 1} {
		if err := members[i].Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range buses {
		Eventually(t, fmt.Sprintf("bus %d lists both members", i), func() bool {
			return slices.Equal(b.RoomMembers("lobby"), []string{"m0", "m1"})
		})
		if info := b.MemberInfo("m1"); info != "user1" {
			t.Fatalf("bus %d: MemberInfo(m1) = %q", i, info)
		}
		if !slices.Contains(b.Rooms(), "lobby") {
			t.Fatalf("bus %d: Rooms() = %v, without lobby", i, b.Rooms())
		}
	}
	tp := topic[string](t, buses[2], "chat.msgs")
	if _, err := tp.Publish(ctx, "hello room", bus.To("lobby")); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Publish(ctx, "not m1", bus.To("lobby"), bus.ExceptMember("m1")); err != nil {
		t.Fatal(err)
	}
	Eventually(t, "m0 got both", func() bool { return logs[0].len() == 2 })
	Eventually(t, "m1 got one", func() bool { return logs[1].len() == 1 })
	time.Sleep(100 * time.Millisecond)
	if n := logs[2].len(); n != 0 {
		t.Fatalf("m2, not in the room, got %d messages", n)
	}
	if got, _ := logs[1].snapshot(); got[0] != "hello room" {
		t.Fatalf("m1 got %q", got)
	}
	if err := members[1].Leave(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	for i, b := range buses {
		Eventually(t, fmt.Sprintf("bus %d lists m0 only", i), func() bool {
			return slices.Equal(b.RoomMembers("lobby"), []string{"m0"})
		})
	}
	Eventually(t, "bus 0 saw m1 join and leave, once each", func() bool {
		evMu.Lock()
		defer evMu.Unlock()
		var seen []string
		for _, ev := range events {
			if ev.Member == "m1" {
				seen = append(seen, fmt.Sprintf("%v/%s", ev.Joined, ev.Info))
			}
		}
		return slices.Equal(seen, []string{"true/user1", "false/user1"})
	})
}

// A queue group with members on two buses gets each message once across
// them, and both share the work.
func testQueueGroup(t *testing.T, h BrokerHarness) {
	buses := h.New(t, 3)
	ctx := ctxT(t)
	var mu sync.Mutex
	got := map[uint64][]int{}
	for _, i := range []int{0, 0, 1} { // two members on bus 0, one on bus 1
		if _, err := buses[i].Subscribe("jobs.>", func(_ context.Context, m bus.Message[any]) error {
			mu.Lock()
			got[m.Seq()] = append(got[m.Seq()], i)
			mu.Unlock()
			return nil
		}, bus.QueueGroup("workers")); err != nil {
			t.Fatal(err)
		}
	}
	jobs := topic[int](t, buses[2], "jobs.resize")
	const total = 300
	for k := range total {
		if _, err := jobs.Publish(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	Eventually(t, "every job handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == total
	})
	time.Sleep(100 * time.Millisecond) // a second delivery would show by now
	mu.Lock()
	defer mu.Unlock()
	per := map[int]int{}
	for seq, on := range got {
		if len(on) != 1 {
			t.Fatalf("job %d handled %d times, on buses %v", seq, len(on), on)
		}
		per[on[0]]++
	}
	if per[0] == 0 || per[1] == 0 {
		t.Fatalf("jobs per bus %v: the group did not share across buses", per)
	}
}

// Request and reply work across buses, handler errors included; with no
// handler on any bus it is ErrNoHandler.
func testRequest(t *testing.T, h BrokerHarness) {
	buses := h.New(t, 3)
	ctx := ctxT(t)
	type q struct{ N int }
	type a struct{ Double int }
	ep0, err := bus.NewEndpoint[q, a](buses[0], "math.double")
	if err != nil {
		t.Fatal(err)
	}
	hd, err := ep0.Handle(func(_ context.Context, r q) (a, error) {
		if r.N < 0 {
			return a{}, errors.New("negative")
		}
		return a{2 * r.N}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ep2, err := bus.NewEndpoint[q, a](buses[2], "math.double")
	if err != nil {
		t.Fatal(err)
	}
	// A broker may take a moment to tell the others about a handler.
	var got a
	Eventually(t, "bus 2 sees the handler", func() bool {
		got, err = ep2.Request(ctx, q{21})
		return !errors.Is(err, bus.ErrNoHandler)
	})
	if err != nil || got.Double != 42 {
		t.Fatalf("Request from bus 2 = %+v, %v", got, err)
	}
	if _, err := ep2.Request(ctx, q{-1}); err == nil || err.Error() != "negative" {
		t.Fatalf("Request with a failing handler: %v", err)
	}
	raw, err := buses[1].RequestRaw(ctx, "math.double", []byte(`{"N":5}`))
	if err != nil || string(raw) != `{"Double":10}` {
		t.Fatalf("RequestRaw from bus 1 = %s, %v", raw, err)
	}
	hd.Stop()
	Eventually(t, "no handler anywhere is ErrNoHandler", func() bool {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := ep2.Request(rctx, q{1})
		return errors.Is(err, bus.ErrNoHandler)
	})
}

// A durable consumer has one position: stopped on one bus and started on
// another, it continues after what it acknowledged.
func testDurable(t *testing.T, h BrokerHarness) {
	buses := h.New(t, 3)
	ctx := ctxT(t)
	pub := topic[int](t, buses[2], "orders.new")
	l := &log[int]{}
	s, err := topic[int](t, buses[0], "orders.new").Subscribe(l.handle, bus.Durable("billing"), bus.StartFirst())
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= 10; k++ {
		if _, err := pub.Publish(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	Eventually(t, "the first ten", func() bool { return l.len() == 10 })
	if err := s.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	for k := 11; k <= 20; k++ {
		if _, err := pub.Publish(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := topic[int](t, buses[1], "orders.new").Subscribe(l.handle, bus.Durable("billing")); err != nil {
		t.Fatal(err)
	}
	Eventually(t, "the next ten on bus 1", func() bool { return l.len() >= 20 })
	time.Sleep(100 * time.Millisecond)
	vals, _ := l.snapshot()
	for i, v := range vals {
		if v != i+1 {
			t.Fatalf("durable saw %v: want 1..20 once each", vals)
		}
	}
}

// A publisher id is remembered across buses, per topic.
func testDedupe(t *testing.T, h BrokerHarness) {
	buses := h.New(t, 2)
	ctx := ctxT(t)
	a := topic[string](t, buses[0], "pay.in")
	b := topic[string](t, buses[1], "pay.in")
	s1, err := a.Publish(ctx, "once", bus.PublisherID("pay-42"))
	if err != nil {
		t.Fatal(err)
	}
	s2, err := b.Publish(ctx, "once", bus.PublisherID("pay-42"))
	if err != nil {
		t.Fatal(err)
	}
	s3, err := b.Publish(ctx, "other", bus.PublisherID("pay-43"))
	if err != nil {
		t.Fatal(err)
	}
	if s1 != s2 || s3 != s1+1 {
		t.Fatalf("seqs %d, %d, %d: want the second publish of pay-42 to be the first", s1, s2, s3)
	}
	other := topic[string](t, buses[1], "pay.out")
	if s, err := other.Publish(ctx, "once", bus.PublisherID("pay-42")); err != nil || s != 1 {
		t.Fatalf("pay-42 on another topic: seq %d, %v; want a message of its own", s, err)
	}
}

// Volatile publishes cross buses, at most once.
func testVolatile(t *testing.T, h BrokerHarness) {
	buses := h.New(t, 2)
	ctx := ctxT(t)
	l := &log[string]{}
	if _, err := topic[string](t, buses[0], "typing.lobby").Subscribe(l.handle, bus.Volatile()); err != nil {
		t.Fatal(err)
	}
	pub := topic[string](t, buses[1], "typing.lobby")
	Eventually(t, "a volatile publish on bus 1 reaches bus 0", func() bool {
		if _, err := pub.Publish(ctx, "alice is typing", bus.Volatile()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		return l.len() > 0
	})
	if vals, _ := l.snapshot(); vals[0] != "alice is typing" {
		t.Fatalf("got %q", vals)
	}
}

// History older than a bus's ring is read from the shared log, from any
// bus, by sequence number and by time.
func testHistory(t *testing.T, h BrokerHarness) {
	buses := h.New(t, 2, bus.History(8, 0))
	ctx := ctxT(t)
	pub := topic[int](t, buses[0], "audit.log")
	var mid time.Time
	for k := 1; k <= 60; k++ {
		if k == 31 {
			time.Sleep(20 * time.Millisecond)
			mid = time.Now()
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := pub.Publish(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	tp := topic[int](t, buses[1], "audit.log")
	msgs, err := tp.Read(ctx, 5, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 10 || msgs[0].Value != 5 || msgs[9].Value != 14 || msgs[0].Seq() != 5 {
		t.Fatalf("Read(5, 10) on bus 1: %d messages, first %v", len(msgs), msgs)
	}
	for _, c := range []struct {
		name  string
		start bus.SubscribeOption
		first int
	}{
		{"first", bus.StartFirst(), 1},
		{"seq", bus.StartSeq(17), 17},
		{"time", bus.StartTime(mid), 31},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := &log[int]{}
			s, err := tp.Subscribe(l.handle, c.start)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Unsubscribe()
			Eventually(t, "history up to 60", func() bool {
				vals, _ := l.snapshot()
				return len(vals) > 0 && vals[len(vals)-1] == 60
			})
			vals, _ := l.snapshot()
			for i, v := range vals {
				if v != c.first+i {
					t.Fatalf("got %v, want %d..60", vals, c.first)
				}
			}
		})
	}
}

// A handler may publish, even into its own topic with a full queue: the
// publish returns once stored, and the feed delivers it when there is room.
func testHandlerPublishes(t *testing.T, h BrokerHarness) {
	buses := h.New(t, 1)
	ctx := ctxT(t)
	tp := topic[int](t, buses[0], "count.down")
	done := make(chan struct{})
	if _, err := tp.Subscribe(func(hctx context.Context, m bus.Message[int]) error {
		if m.Value == 0 {
			close(done)
			return nil
		}
		_, err := tp.Publish(hctx, m.Value-1)
		return err
	}, bus.QueueSize(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Publish(ctx, 50); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the count down stopped: a handler's publish waited on its own queue")
	}
}
