package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/cluster"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// A queue group with members on two nodes gets each message once, across
// the cluster.
func TestQueueGroupAcrossNodes(t *testing.T) {
	tc := newCluster(t, 3, cluster.Config{})
	ctx := ctxT(t)
	var mu sync.Mutex
	got := map[uint64][]int{}
	for _, i := range []int{0, 0, 1} { // two members on node A, one on B
		node := i
		_, err := tc.bus(i).Subscribe("jobs.>", func(_ context.Context, m bus.Message[any]) error {
			mu.Lock()
			got[m.Seq()] = append(got[m.Seq()], node)
			mu.Unlock()
			return nil
		}, bus.Queue("workers"))
		if err != nil {
			t.Fatal(err)
		}
	}
	jobs, err := bus.NewTopic[int](tc.bus(2), "jobs.resize")
	if err != nil {
		t.Fatal(err)
	}
	// The registrations travel through the log: wait until a probe
	// message is handled once only, then count.
	const total = 300
	for k := range total {
		if _, err := jobs.Publish(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every job handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == total
	})
	time.Sleep(200 * time.Millisecond) // a second delivery would show by now
	mu.Lock()
	defer mu.Unlock()
	per := map[int]int{}
	for seq, nodes := range got {
		if len(nodes) != 1 {
			t.Fatalf("job %d handled %d times, on nodes %v", seq, len(nodes), nodes)
		}
		per[nodes[0]]++
	}
	if per[0] == 0 || per[1] == 0 {
		t.Fatalf("jobs per node %v: the group did not share across nodes", per)
	}
}

// Rooms and presence are cluster-wide: a publish To a room reaches its
// members on every node once, RoomMembers lists all of them, and joins
// and leaves of other nodes are events on every node.
func TestRoomsAcrossNodes(t *testing.T) {
	tc := newCluster(t, 3, cluster.Config{})
	ctx := ctxT(t)
	cols := make([]*collector, 3)
	members := make([]*bus.Member, 3)
	var evMu sync.Mutex
	var events []bus.RoomEvent
	if _, err := tc.bus(0).Subscribe(bus.RoomTopic("lobby"), func(_ context.Context, m bus.Message[any]) error {
		evMu.Lock()
		events = append(events, m.Value.(bus.RoomEvent))
		evMu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m, err := tc.bus(i).Member(fmt.Sprintf("m%d", i))
		if err != nil {
			t.Fatal(err)
		}
		m.SetInfo(fmt.Sprintf("user%d", i))
		members[i] = m
		tp, err := bus.NewTopic[chat](tc.bus(i), "chat.msgs")
		if err != nil {
			t.Fatal(err)
		}
		cols[i] = &collector{}
		if _, err := tp.Subscribe(cols[i].handle, bus.Owner(m)); err != nil {
			t.Fatal(err)
		}
	}
	// m0 and m1 in the room, m2 not.
	for _, i := range []int{0, 1} {
		if err := members[i].Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		eventually(t, fmt.Sprintf("node %d lists both members", i), func() bool {
			return slices.Equal(tc.bus(i).RoomMembers("lobby"), []string{"m0", "m1"})
		})
		if info := tc.bus(i).MemberInfo("m1"); info != "user1" {
			t.Fatalf("node %d: MemberInfo(m1) = %q", i, info)
		}
	}
	tp, _ := bus.NewTopic[chat](tc.bus(2), "chat.msgs")
	if _, err := tp.Publish(ctx, chat{Text: "hello room"}, bus.To("lobby")); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Publish(ctx, chat{Text: "not m1"}, bus.To("lobby"), bus.ExceptMember("m1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "m0 got both", func() bool { return cols[0].len() == 2 })
	eventually(t, "m1 got one", func() bool { return cols[1].len() == 1 })
	time.Sleep(200 * time.Millisecond)
	if n := cols[2].len(); n != 0 {
		t.Fatalf("m2, not in the room, got %d messages", n)
	}
	if got, _ := cols[1].snapshot(); got[0] != "hello room" {
		t.Fatalf("m1 got %q", got)
	}
	if err := members[1].Leave(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		eventually(t, fmt.Sprintf("node %d lists m0 only", i), func() bool {
			return slices.Equal(tc.bus(i).RoomMembers("lobby"), []string{"m0"})
		})
	}
	eventually(t, "node A saw m1 join and leave", func() bool {
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

// Request and reply work across nodes, errors included.
func TestRequestAcrossNodes(t *testing.T) {
	tc := newCluster(t, 3, cluster.Config{})
	ctx := ctxT(t)
	type q struct{ N int }
	type a struct{ Double int }
	ep0, err := bus.NewEndpoint[q, a](tc.bus(0), "math.double")
	if err != nil {
		t.Fatal(err)
	}
	h, err := ep0.Handle(func(_ context.Context, r q) (a, error) {
		if r.N < 0 {
			return a{}, errors.New("negative")
		}
		return a{2 * r.N}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ep2, err := bus.NewEndpoint[q, a](tc.bus(2), "math.double")
	if err != nil {
		t.Fatal(err)
	}
	// The handler's subscription reaches the other NATS servers through
	// their routes, within moments.
	var got a
	eventually(t, "node C sees the handler", func() bool {
		got, err = ep2.Request(ctx, q{21})
		return !errors.Is(err, bus.ErrNoHandler)
	})
	if err != nil || got.Double != 42 {
		t.Fatalf("Request from node C = %+v, %v", got, err)
	}
	if _, err := ep2.Request(ctx, q{-1}); err == nil || err.Error() != "negative" {
		t.Fatalf("Request with a failing handler: %v", err)
	}
	raw, err := tc.bus(1).RequestRaw(ctx, "math.double", []byte(`{"N":5}`))
	if err != nil || string(raw) != `{"Double":10}` {
		t.Fatalf("RequestRaw from node B = %s, %v", raw, err)
	}
	h.Stop()
	eventually(t, "no handler anywhere is ErrNoHandler", func() bool {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := ep2.Request(rctx, q{1})
		return errors.Is(err, bus.ErrNoHandler)
	})
}

// A durable consumer keeps one position in the cluster: stopped on one
// node, it continues on another after what it acknowledged.
func TestDurableAcrossNodes(t *testing.T) {
	tc := newCluster(t, 3, cluster.Config{})
	ctx := ctxT(t)
	pub, err := bus.NewTopic[int](tc.bus(2), "orders.new")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []int
	handle := func(_ context.Context, m bus.Message[int]) error {
		mu.Lock()
		seen = append(seen, m.Value)
		mu.Unlock()
		return nil
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
	t0, err := bus.NewTopic[int](tc.bus(0), "orders.new")
	if err != nil {
		t.Fatal(err)
	}
	s, err := t0.Subscribe(handle, bus.Durable("billing"), bus.StartFirst())
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= 10; k++ {
		if _, err := pub.Publish(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the first ten", func() bool { return count() == 10 })
	if err := s.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	for k := 11; k <= 20; k++ {
		if _, err := pub.Publish(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	t1, err := bus.NewTopic[int](tc.bus(1), "orders.new")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := t1.Subscribe(handle, bus.Durable("billing")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the next ten on node B", func() bool { return count() >= 20 })
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for i, v := range seen {
		if v != i+1 {
			t.Fatalf("durable saw %v: want 1..20 once each", seen)
		}
	}
}

// The members of a node that stops without leaving leave their rooms on
// the other nodes once the node has been silent for MemberGrace.
func TestMembersOfAStoppedNodeLeave(t *testing.T) {
	tc := newCluster(t, 3, cluster.Config{Heartbeat: 100 * time.Millisecond, MemberGrace: time.Second})
	ctx := ctxT(t)
	var mu sync.Mutex
	var left []string
	if _, err := tc.bus(1).Subscribe(bus.RoomTopic("lobby"), func(_ context.Context, m bus.Message[any]) error {
		if ev := m.Value.(bus.RoomEvent); !ev.Joined {
			mu.Lock()
			left = append(left, ev.Member)
			mu.Unlock()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		m, err := tc.bus(i).Member(fmt.Sprintf("m%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "node C lists both", func() bool {
		return slices.Equal(tc.bus(2).RoomMembers("lobby"), []string{"m0", "m1"})
	})
	time.Sleep(300 * time.Millisecond) // node A has beaten: the others know it
	tc.stopNode(0)                     // closes without leaving: as if it died
	for _, i := range []int{1, 2} {
		eventually(t, fmt.Sprintf("node %d lists m1 only", i), func() bool {
			return slices.Equal(tc.bus(i).RoomMembers("lobby"), []string{"m1"})
		})
	}
	eventually(t, "node B saw m0 leave", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Equal(left, []string{"m0"})
	})
}

// A publisher id is remembered across the cluster: the same id published
// on two nodes is one message.
func TestDedupeAcrossNodes(t *testing.T) {
	tc := newCluster(t, 3, cluster.Config{})
	ctx := ctxT(t)
	a, _ := bus.NewTopic[string](tc.bus(0), "pay.in")
	b, _ := bus.NewTopic[string](tc.bus(1), "pay.in")
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
	// Ids are per topic, as on one bus.
	other, _ := bus.NewTopic[string](tc.bus(1), "pay.out")
	if s, err := other.Publish(ctx, "once", bus.PublisherID("pay-42")); err != nil || s != 1 {
		t.Fatalf("pay-42 on another topic: seq %d, %v; want a message of its own", s, err)
	}
}

// Volatile publishes cross nodes, at most once.
func TestVolatileAcrossNodes(t *testing.T) {
	tc := newCluster(t, 3, cluster.Config{})
	ctx := ctxT(t)
	var mu sync.Mutex
	var got []string
	tp, _ := bus.NewTopic[string](tc.bus(0), "typing.lobby")
	if _, err := tp.Subscribe(func(_ context.Context, m bus.Message[string]) error {
		mu.Lock()
		got = append(got, m.Value)
		mu.Unlock()
		return nil
	}, bus.Volatile()); err != nil {
		t.Fatal(err)
	}
	pub, _ := bus.NewTopic[string](tc.bus(1), "typing.lobby")
	eventually(t, "a volatile publish on node B reaches node A", func() bool {
		if _, err := pub.Publish(ctx, "alice is typing", bus.Volatile()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	if got[0] != "alice is typing" {
		t.Fatalf("got %q", got)
	}
}

// History older than a node's ring is read from the shared log, from any
// node, by sequence number and by time.
func TestHistoryFromTheSharedLog(t *testing.T) {
	tc := newCluster(t, 3, cluster.Config{}, bus.History(8, 0))
	ctx := ctxT(t)
	pub, _ := bus.NewTopic[int](tc.bus(0), "audit.log")
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
	tp, _ := bus.NewTopic[int](tc.bus(1), "audit.log")
	msgs, err := tp.Read(ctx, 5, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 10 || msgs[0].Value != 5 || msgs[9].Value != 14 || msgs[0].Seq() != 5 {
		t.Fatalf("Read(5, 10) on node B: %d messages, first %v", len(msgs), msgs)
	}
	for _, tc := range []struct {
		name  string
		start bus.SubscribeOption
		first int
	}{
		{"first", bus.StartFirst(), 1},
		{"seq", bus.StartSeq(17), 17},
		{"time", bus.StartTime(mid), 31},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []int
			s, err := tp.Subscribe(func(_ context.Context, m bus.Message[int]) error {
				mu.Lock()
				got = append(got, m.Value)
				mu.Unlock()
				return nil
			}, tc.start)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Unsubscribe()
			eventually(t, "history up to 60", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(got) > 0 && got[len(got)-1] == 60
			})
			mu.Lock()
			defer mu.Unlock()
			for i, v := range got {
				if v != tc.first+i {
					t.Fatalf("got %v, want %d..60", got, tc.first)
				}
			}
		})
	}
}

// A handler may publish, even into its own topic with a full queue: the
// publish returns once stored, and the feed delivers it when there is room.
func TestHandlerPublishesThroughTheFeed(t *testing.T) {
	tc := newCluster(t, 1, cluster.Config{})
	ctx := ctxT(t)
	tp, _ := bus.NewTopic[int](tc.bus(0), "count.down")
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
