package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/bus/bustest"
	"github.com/courierbus/courier/cluster"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// The node keeps the cross-bus contract of the Broker seam, on a NATS
// cluster of three servers with three replicas: the suite the in-memory
// hub runs.
func TestBrokerContract(t *testing.T) {
	bustest.TestBroker(t, bustest.BrokerHarness{
		New: func(t *testing.T, n int, opts ...bus.Option) []*bus.Bus {
			servers := 3 // the cluster; one for a single bus
			if n == 1 {
				servers = 1
			}
			tc := newCluster(t, servers, cluster.Config{}, opts...)
			buses := make([]*bus.Bus, n)
			for i := range n {
				buses[i] = tc.bus(i)
			}
			return buses
		},
	})
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
	eventually(t, "nodes B and C hear node A", func() bool {
		return tc.nodes[1].node.Stats().Nodes == 2 && tc.nodes[2].node.Stats().Nodes == 2
	})
	tc.stopNode(0) // closes without leaving: as if it died
	for _, i := range []int{1, 2} {
		eventually(t, fmt.Sprintf("node %d lists m1 only", i), func() bool {
			return slices.Equal(tc.bus(i).RoomMembers("lobby"), []string{"m1"})
		})
	}
	if st := tc.nodes[1].node.Stats(); !st.Connected || st.Nodes != 1 || st.Fed != 0 {
		t.Fatalf("node B's stats %+v: want connected, hearing one other node, nothing fed", st)
	}
	eventually(t, "node B saw m0 leave", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Equal(left, []string{"m0"})
	})
}

// A node that dies (its NATS connection gone, nothing said) loses its
// share of a queue group once it has been silent for three heartbeats:
// the other members get everything published after that.
func TestQueueGroupOutlivesADeadNode(t *testing.T) {
	tc := newCluster(t, 3, cluster.Config{Heartbeat: 100 * time.Millisecond})
	ctx := ctxT(t)
	var mu sync.Mutex
	got := map[string]int{} // value -> times handled on node B
	for _, i := range []int{0, 1} {
		if _, err := tc.bus(i).Subscribe("jobs.>", func(_ context.Context, m bus.Message[any]) error {
			if i == 1 {
				data, err := m.Data()
				if err != nil {
					return err
				}
				mu.Lock()
				got[string(data)]++
				mu.Unlock()
			}
			return nil
		}, bus.QueueGroup("workers")); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the nodes hear each other", func() bool {
		for i := range 3 {
			if tc.nodes[i].node.Stats().Nodes != 2 {
				return false
			}
		}
		return true
	})
	tc.nodes[0].nc.Close() // node A dies: no goodbye
	eventually(t, "nodes B and C withdrew node A's share of the group", func() bool {
		return tc.nodes[1].node.Stats().Withdrawn > 0 && tc.nodes[2].node.Stats().Withdrawn > 0
	})
	jobs, err := bus.NewTopic[float64](tc.bus(2), "jobs.resize")
	if err != nil {
		t.Fatal(err)
	}
	const total = 100
	for k := range total {
		if _, err := jobs.Publish(ctx, float64(k)); err != nil {
			t.Fatal(err)
		}
	}
	bustest.Eventually(t, "node B handled every job", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == total
	})
	mu.Lock()
	defer mu.Unlock()
	for v, n := range got {
		if n != 1 {
			t.Fatalf("job %s handled %d times on node B", v, n)
		}
	}
}
