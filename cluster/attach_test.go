package cluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/cluster"
	"github.com/courierbus/courier/internal/natscluster"
	"github.com/courierbus/courier/internal/tcpproxy"
)

// A node whose attach failed (NATS unreachable when the bus was made) can
// be given to a new bus once NATS is back, and that bus works: it publishes
// to the cluster and receives what another node publishes.
func TestAttachAgainAfterAFailedAttach(t *testing.T) {
	nc, err := natscluster.Start(1, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Shutdown()
	proxy := tcpproxy.New(t, nc.URL(0)[len("nats://"):])
	connect := func(url string) *nats.Conn {
		c, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := cluster.Config{Name: "flaky", Timeout: 500 * time.Millisecond}
	node, err := cluster.New(ctx, connect("nats://"+proxy.Addr()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()

	proxy.Block()
	if b, err := bus.New(bus.WithBroker(node)); err == nil {
		b.Close()
		t.Fatal("bus.New attached a node whose NATS is unreachable")
	} else if !errors.Is(err, cluster.ErrUnavailable) {
		t.Fatalf("got %v, want an error wrapping cluster.ErrUnavailable", err)
	}
	proxy.Unblock()

	var b *bus.Bus
	eventually(t, "the node attaches once NATS is back", func() bool {
		b, err = bus.New(bus.WithBroker(node))
		if err != nil && !errors.Is(err, cluster.ErrUnavailable) {
			t.Fatalf("attach again: %v", err)
		}
		return err == nil
	})
	defer b.Close()
	if _, err := bus.New(bus.WithBroker(node)); err == nil {
		t.Fatal("a node attached to a live bus attached to a second one")
	}

	other, err := cluster.New(ctx, connect(nc.URL(0)), cluster.Config{Name: "steady"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ob, err := bus.New(bus.WithBroker(other))
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()

	got := make(chan string, 2)
	for _, x := range []*bus.Bus{b, ob} {
		tp, err := bus.NewTopic[string](x, "attach.check")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tp.Subscribe(func(_ context.Context, m bus.Message[string]) error {
			if x == ob {
				got <- m.Value
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	tp, _ := bus.NewTopic[string](b, "attach.check")
	seq, err := tp.Publish(ctx, "from the node attached again")
	if err != nil {
		t.Fatal(err)
	}
	if seq != 1 {
		t.Fatalf("got seq %d, want 1", seq)
	}
	select {
	case v := <-got:
		if v != "from the node attached again" {
			t.Fatalf("got %q", v)
		}
	case <-ctx.Done():
		t.Fatal("the other node did not receive the publish")
	}
}
