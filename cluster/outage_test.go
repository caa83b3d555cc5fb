package cluster_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/cluster"
)

// Every NATS server stops and starts again while a node publishes. While
// NATS is away a publish fails (cluster.ErrUnavailable, or its context's
// error) and delivers nothing it acknowledged; when NATS is back the nodes
// recover by themselves and every acknowledged message reaches the
// subscribers of every node, once, in order.
func TestNATSOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a NATS cluster")
	}
	tc := newCluster(t, 3, cluster.Config{Timeout: 2 * time.Second})
	type sink struct {
		mu   sync.Mutex
		vals []int
		seqs []uint64
	}
	sinks := make([]*sink, 2)
	for i := range sinks {
		s := &sink{}
		sinks[i] = s
		tp, err := bus.NewTopic[int](tc.bus(i), "meter.readings")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tp.Subscribe(func(_ context.Context, m bus.Message[int]) error {
			s.mu.Lock()
			s.vals = append(s.vals, m.Value)
			s.seqs = append(s.seqs, m.Seq())
			s.mu.Unlock()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := bus.NewTopic[int](tc.bus(2), "meter.readings")
	if err != nil {
		t.Fatal(err)
	}
	var (
		acked   []int
		failed  int
		wrongly []error
	)
	publish := func(v int) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if _, err := pub.Publish(ctx, v); err != nil {
			failed++
			time.Sleep(10 * time.Millisecond)
			if !errors.Is(err, cluster.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
				wrongly = append(wrongly, err)
			}
			return
		}
		acked = append(acked, v)
	}
	v := 0
	for range 50 {
		v++
		publish(v)
	}
	for i := range tc.nats.Len() {
		tc.nats.Stop(i)
	}
	for range 3 {
		v++
		publish(v)
	}
	if failed == 0 {
		t.Fatal("publishes succeeded with every NATS server down")
	}
	for i := range tc.nats.Len() {
		if err := tc.nats.Restart(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := tc.nats.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Publishing goes on until the cluster takes messages again, then 50
	// more.
	back := time.Now()
	deadline := back.Add(60 * time.Second)
	after := 0
	for after < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("no recovery: %d published after the restart", after)
		}
		v++
		n := len(acked)
		publish(v)
		if len(acked) > n {
			if after == 0 {
				t.Logf("publishing again %v after NATS restarted", time.Since(back).Round(time.Millisecond))
			}
			after++
		}
	}
	if len(wrongly) > 0 {
		t.Fatalf("publishes failed with errors other than ErrUnavailable or a deadline: %v", wrongly)
	}
	for i, s := range sinks {
		eventually(t, "every acknowledged message on node "+string(rune('A'+i)), func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			have := make(map[int]bool, len(s.vals))
			for _, x := range s.vals {
				have[x] = true
			}
			for _, x := range acked {
				if !have[x] {
					return false
				}
			}
			return true
		})
		s.mu.Lock()
		for k, q := range s.seqs {
			if q != uint64(k+1) {
				t.Fatalf("node %d: delivery %d has seq %d: a gap or a repeat", i, k, q)
			}
		}
		s.mu.Unlock()
	}
	t.Logf("%d acknowledged, %d failed while NATS was away", len(acked), failed)
}
