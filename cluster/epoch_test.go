package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/cluster"
)

// The stream loses its tail as JetStream does when a power cut takes what
// its servers had not synced: every server stops, and comes back from a
// copy of its files made earlier. The topics' ends go back from seq 20 to
// 10 while the nodes and clients hold positions up to 20. Then:
//
//   - the next publish to a topic gets seq 11 under a new epoch, never
//     (old epoch, 11) again, and every node delivers it under that epoch;
//   - a bridge client subscribed throughout gets a resync to seq 11, then
//     the new message;
//   - subscribing after (old epoch, 20) is ErrNotCovered on a bus, a resync
//     for a bridge client;
//   - a node started after the loss, which saw nothing, learns of it from a
//     position presented to it past the end, and its next publish to that
//     topic starts a new epoch too.
func TestHistoryWentBackwards(t *testing.T) {
	tc := newCluster(t, 3, cluster.Config{Heartbeat: 100 * time.Millisecond, Timeout: 2 * time.Second})
	url := tc.serve(0, bridge.Expose("hist.>", bridge.Publish, bridge.Subscribe))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	type got struct {
		epoch, seq uint64
		v          int
	}
	type sink struct {
		mu  sync.Mutex
		got []got
	}
	snapshot := func(s *sink) []got {
		s.mu.Lock()
		defer s.mu.Unlock()
		return append([]got(nil), s.got...)
	}
	// subscribe makes a sink of what bus i delivers of hist.a.
	subscribe := func(i int) *sink {
		s := &sink{}
		tp, err := bus.NewTopic[int](tc.bus(i), "hist.a")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tp.Subscribe(func(_ context.Context, m bus.Message[int]) error {
			s.mu.Lock()
			s.got = append(s.got, got{m.Position().Epoch, m.Seq(), m.Value})
			s.mu.Unlock()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	sinks := []*sink{subscribe(0), subscribe(1), subscribe(2)}
	publish := func(i int, topic string, v int) (uint64, uint64) {
		t.Helper()
		tp, err := bus.NewTopic[int](tc.bus(i), topic)
		if err != nil {
			t.Fatal(err)
		}
		for {
			seq, err := tp.Publish(ctx, v)
			if err == nil {
				return seq, tp.Epoch()
			}
			if !errors.Is(err, cluster.ErrUnavailable) || ctx.Err() != nil {
				t.Fatalf("publish %d to %s on bus %d: %v", v, topic, i, err)
			}
		}
	}
	for v := 1; v <= 10; v++ {
		publish(1, "hist.a", v)
		publish(1, "hist.b", v)
	}

	// A copy of every server's files, as a power cut would leave them.
	copies := make([]string, 3)
	for i := range 3 {
		tc.nats.Stop(i)
	}
	for i := range 3 {
		copies[i] = t.TempDir()
		if err := os.CopyFS(copies[i], os.DirFS(tc.nats.Dir(i))); err != nil {
			t.Fatal(err)
		}
		if err := tc.nats.Restart(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := tc.nats.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	// A bridge client on node A, subscribed from here on.
	var (
		cmu     sync.Mutex
		cgot    []got
		resyncs []client.Event
	)
	c, err := client.Dial(ctx, url, client.OnEvent(func(ev client.Event) {
		if ev.Type == client.Resync {
			cmu.Lock()
			resyncs = append(resyncs, ev)
			cmu.Unlock()
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	live, err := c.Subscribe(ctx, "hist.a", func(_ context.Context, m *client.Message) error {
		var v int
		json.Unmarshal(m.Data, &v)
		cmu.Lock()
		cgot = append(cgot, got{m.Epoch, m.Seq, v})
		cmu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var old uint64
	for v := 11; v <= 20; v++ {
		publish(1, "hist.a", v)
		_, old = publish(1, "hist.b", v)
	}
	for i, s := range sinks {
		eventually(t, fmt.Sprintf("bus %d has hist.a up to 20", i), func() bool { return len(snapshot(s)) == 20 })
	}
	eventually(t, "the client has hist.a 11 to 20", func() bool {
		cmu.Lock()
		defer cmu.Unlock()
		return len(cgot) == 10
	})

	// The power cut: every server back from its copy.
	for i := range 3 {
		tc.nats.Stop(i)
	}
	for i := range 3 {
		if err := os.RemoveAll(tc.nats.Dir(i)); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(tc.nats.Dir(i), os.DirFS(copies[i])); err != nil {
			t.Fatal(err)
		}
		if err := tc.nats.Restart(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := tc.nats.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	for {
		// The stream has a leader again within moments.
		st, err := tc.nodes[0].node.Topic(ctx, "hist.a")
		if err == nil && (st.Last != 10 || st.Epoch != old) {
			t.Fatalf("after the cut the stream has hist.a %+v; want its end at 10 under epoch %d", st, old)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, cluster.ErrUnavailable) || ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Node B restarts: it saw nothing of what was lost.
	tc.stopNode(1)
	tc.startNode(1)
	restarted := subscribe(1)

	// The next publish on node C, which saw up to 20, starts a new epoch.
	seq, fresh := publish(2, "hist.a", 111)
	if seq != 11 || fresh == old {
		t.Fatalf("after the loss a publish got (epoch %d, seq %d); the old epoch is %d: want seq 11 under a new one", fresh, seq, old)
	}
	eventually(t, "the restarted bus delivers the new epoch's first message", func() bool { return len(snapshot(restarted)) == 1 })
	if g := snapshot(restarted); g[0] != (got{fresh, 11, 111}) {
		t.Fatalf("restarted bus: got %+v, want (epoch %d, seq 11, 111)", g[0], fresh)
	}
	for _, i := range []int{0, 2} {
		s := sinks[i]
		eventually(t, fmt.Sprintf("bus %d delivers the new epoch's first message", i), func() bool { return len(snapshot(s)) == 21 })
		g := snapshot(s)
		for k, x := range g[:20] {
			if x != (got{old, uint64(k + 1), k + 1}) {
				t.Fatalf("bus %d, delivery %d: %+v", i, k, x)
			}
		}
		if g[20] != (got{fresh, 11, 111}) {
			t.Fatalf("bus %d: after the loss got %+v, want (epoch %d, seq 11, 111)", i, g[20], fresh)
		}
	}
	eventually(t, "the client is resynced and gets the new message", func() bool {
		cmu.Lock()
		defer cmu.Unlock()
		return len(cgot) == 11
	})
	cmu.Lock()
	if cgot[10] != (got{fresh, 11, 111}) {
		t.Fatalf("the client got %+v after the loss", cgot[10])
	}
	if len(resyncs) != 1 || resyncs[0].Sub != live.ID() || resyncs[0].Seq != 11 {
		t.Fatalf("the client's resyncs: %+v, want one to seq 11", resyncs)
	}
	cmu.Unlock()

	// Positions of the old epoch past the end.
	nop := func(context.Context, bus.Message[int]) error { return nil }
	tpA, _ := bus.NewTopic[int](tc.bus(0), "hist.a")
	eventually(t, "bus A has the new epoch", func() bool { return tpA.Epoch() == fresh })
	if _, err := tpA.Subscribe(nop, bus.StartAfter(bus.Position{Epoch: old, Seq: 20})); !errors.Is(err, bus.ErrNotCovered) {
		t.Fatalf("subscribe after (old epoch, 20): %v, want ErrNotCovered", err)
	}
	// hist.b on the restarted node B: nothing was published since the
	// loss, so its epoch is still the old one; a position past its end is
	// the only sign of the loss node B can have.
	tpB, _ := bus.NewTopic[int](tc.bus(1), "hist.b")
	if tpB.Epoch() != old {
		t.Fatalf("hist.b epoch %d, want the old %d", tpB.Epoch(), old)
	}
	if _, err := tpB.Subscribe(nop, bus.StartAfter(bus.Position{Epoch: old, Seq: 20})); !errors.Is(err, bus.ErrNotCovered) {
		t.Fatalf("subscribe to hist.b after (old epoch, 20) on the restarted node: %v, want ErrNotCovered", err)
	}
	seq, freshB := publish(1, "hist.b", 111)
	if seq != 11 || freshB == old {
		t.Fatalf("hist.b after the loss: (epoch %d, seq %d), want seq 11 under a new epoch (old %d)", freshB, seq, old)
	}
	// A bridge client coming back with its last position is told.
	cmu.Lock()
	resyncs = nil
	cmu.Unlock()
	back, err := c.Subscribe(ctx, "hist.a", func(context.Context, *client.Message) error { return nil },
		client.StartAfter(old, 20))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "a resync for the client's old position", func() bool {
		cmu.Lock()
		defer cmu.Unlock()
		return len(resyncs) == 1 && resyncs[0].Sub == back.ID()
	})
	st := tc.nodes[2].node.Stats().Epochs + tc.nodes[1].node.Stats().Epochs
	if st != 2 {
		t.Fatalf("the nodes started %d epochs, want 2", st)
	}
}
