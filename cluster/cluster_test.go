package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/cluster"
)

type chat struct {
	From string `json:"from"`
	Text string `json:"text"`
}

// collector records what a subscription handled.
type collector struct {
	mu   sync.Mutex
	got  []string
	seqs []uint64
}

func (c *collector) handle(_ context.Context, m bus.Message[chat]) error {
	c.mu.Lock()
	c.got = append(c.got, m.Value.Text)
	c.seqs = append(c.seqs, m.Seq())
	c.mu.Unlock()
	return nil
}

func (c *collector) snapshot() ([]string, []uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got), slices.Clone(c.seqs)
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func TestPublishReachesEveryNodeOnce(t *testing.T) {
	tc := newCluster(t, 3, cluster.Config{})
	cols := make([]*collector, 3)
	for i := range 3 {
		tp, err := bus.NewTopic[chat](tc.bus(i), "chat.lobby")
		if err != nil {
			t.Fatal(err)
		}
		cols[i] = &collector{}
		if _, err := tp.Subscribe(cols[i].handle); err != nil {
			t.Fatal(err)
		}
	}
	// Each node publishes; sequence numbers are one sequence cluster-wide.
	const per = 20
	var wg sync.WaitGroup
	for i := range 3 {
		tp, _ := bus.NewTopic[chat](tc.bus(i), "chat.lobby")
		wg.Go(func() {
			for k := range per {
				if _, err := tp.Publish(context.Background(), chat{From: fmt.Sprint(i), Text: fmt.Sprintf("%d-%d", i, k)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i, c := range cols {
		eventually(t, fmt.Sprintf("node %d has every message", i), func() bool { return c.len() >= 3*per })
	}
	got0, seqs0 := cols[0].snapshot()
	for i, c := range cols {
		got, seqs := c.snapshot()
		if len(got) != 3*per {
			t.Fatalf("node %d handled %d messages, want %d", i, len(got), 3*per)
		}
		for k, s := range seqs {
			if s != uint64(k+1) {
				t.Fatalf("node %d: message %d has seq %d", i, k, s)
			}
		}
		if !slices.Equal(got, got0) || !slices.Equal(seqs, seqs0) {
			t.Fatalf("node %d saw another order than node 0", i)
		}
	}
	// Positions mean the same on every node.
	p0, _ := tc.bus(0).Position(context.Background(), "chat.lobby")
	for i := 1; i < 3; i++ {
		p, _ := tc.bus(i).Position(context.Background(), "chat.lobby")
		if p != p0 {
			t.Fatalf("node %d position %+v, node 0 %+v", i, p, p0)
		}
	}
}
