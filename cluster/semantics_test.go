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
