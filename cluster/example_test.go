package cluster_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/cluster"
	"github.com/courierbus/courier/internal/natscluster"
)

// Two buses, as two processes would be, share a topic through NATS: what
// one publishes, the other's subscribers get, with the same position.
func Example() {
	dir, _ := os.MkdirTemp("", "courier-example")
	defer os.RemoveAll(dir)
	servers, err := natscluster.Start(1, dir) // an embedded NATS server; yours in production
	if err != nil {
		fmt.Println(err)
		return
	}
	defer servers.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	join := func(name string) (*bus.Bus, func()) {
		nc, _ := nats.Connect(servers.URL(0))
		node, err := cluster.New(ctx, nc, cluster.Config{Name: name})
		if err != nil {
			panic(err)
		}
		b, _ := bus.New(bus.WithBroker(node))
		return b, func() { b.Close(); node.Close(); nc.Close() }
	}
	web1, close1 := join("web-1")
	defer close1()
	web2, close2 := join("web-2")
	defer close2()

	got := make(chan bus.Message[string], 1)
	in2, _ := bus.NewTopic[string](web2, "chat.lobby")
	in2.Subscribe(func(_ context.Context, m bus.Message[string]) error {
		got <- m
		return nil
	})
	in1, _ := bus.NewTopic[string](web1, "chat.lobby")
	seq, _ := in1.Publish(ctx, "hello from web-1")
	m := <-got
	fmt.Println(m.Value, seq == m.Seq(), in1.Epoch() == in2.Epoch())
	// Output: hello from web-1 true true
}
