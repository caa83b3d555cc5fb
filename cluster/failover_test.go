package cluster_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/cluster"
)

// A Go client on node A receives a stream published on node C; node A
// stops mid-stream; the client goes on from node B and sees every message
// exactly once, in order.
func TestFailoverExactlyOnceInOrder(t *testing.T) {
	tc := newCluster(t, 3, cluster.Config{Heartbeat: 100 * time.Millisecond, MemberGrace: time.Second})
	urls := make([]string, 3)
	key := []byte("a secret the nodes share, 32 b..")
	for i := range 3 {
		urls[i] = tc.serve(i, bridge.Expose("feed.>", bridge.Subscribe), bridge.ExposeRooms("*", bridge.Join),
			bridge.SessionKey(key))
	}
	const total = 5000
	var (
		mu    sync.Mutex
		seqs  []uint64
		epoch uint64
		half  = make(chan struct{})
		done  = make(chan struct{})
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	connects := make(chan client.Event, 16)
	c, err := client.Dial(ctx, urls[0], client.Fallback(urls[1]), client.ReconnectBackoff(20*time.Millisecond, 200*time.Millisecond),
		client.OnEvent(func(ev client.Event) {
			if ev.Type == client.Connected {
				connects <- ev
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Subscribe(ctx, "feed.ticks", func(_ context.Context, m *client.Message) error {
		var v int
		if err := json.Unmarshal(m.Data, &v); err != nil {
			t.Errorf("message %d: %v", m.Seq, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if epoch != 0 && m.Epoch != epoch {
			t.Errorf("epoch changed from %d to %d", epoch, m.Epoch)
		}
		epoch = m.Epoch
		seqs = append(seqs, m.Seq)
		if len(seqs) == total/3 {
			close(half)
		}
		if m.Seq == total {
			close(done)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Join(ctx, "desk"); err != nil {
		t.Fatal(err)
	}
	ticks, err := bus.NewTopic[int](tc.bus(2), "feed.ticks")
	if err != nil {
		t.Fatal(err)
	}
	pubDone := make(chan error, 1)
	go func() {
		for k := 1; k <= total; k++ {
			if _, err := ticks.Publish(ctx, k); err != nil {
				pubDone <- err
				return
			}
		}
		pubDone <- nil
	}()
	select {
	case <-half:
	case <-ctx.Done():
		t.Fatal("the client did not get a third of the stream")
	}
	first := <-connects
	tc.stopNode(0) // node A: its bridge, bus and cluster node go away
	select {
	case err := <-pubDone:
		t.Fatalf("the stream ended (%v) before node A stopped: nothing was tested", err)
	default:
	}
	select {
	case ev := <-connects:
		// Node B honours node A's token (the nodes share a SessionKey):
		// the same session id and member, made again from the client.
		if ev.Session != first.Session || ev.Resumed {
			t.Fatalf("reconnected to session %q (resumed %v); want %q taken over, not resumed", ev.Session, ev.Resumed, first.Session)
		}
	case <-ctx.Done():
		t.Fatal("the client did not reconnect")
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("the client got %d messages, the last %d", len(seqs), seqs[len(seqs)-1])
	}
	if st := tc.nodes[2].node.Stats(); st.Appended != total || st.Failed != 0 || st.Batches == 0 || st.Batches > total {
		t.Fatalf("node C's stats %+v: want %d appended in at most as many batches, none failed", st, total)
	}
	if st := tc.nodes[1].node.Stats(); !st.Connected || st.Fed < total || st.FeedSeq == 0 {
		t.Fatalf("node B's stats %+v: want connected, every message fed", st)
	}
	// The member stays in its room, now node B's: it does not leave when
	// node A's members do.
	eventually(t, "nodes B and C removed node A's members", func() bool {
		return tc.nodes[1].node.Stats().Dropped > 0 && tc.nodes[2].node.Stats().Dropped > 0
	})
	for _, i := range []int{1, 2} {
		if got := tc.bus(i).RoomMembers("desk"); len(got) != 1 || got[0] != first.Session {
			t.Fatalf("node %d lists %v in the room; want the session %q once", i, got, first.Session)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seqs) != total {
		t.Fatalf("got %d deliveries for %d messages", len(seqs), total)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("delivery %d has seq %d: not exactly once in order", i, s)
		}
	}
}
