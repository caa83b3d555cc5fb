package cluster_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/bus/bustest"
	"github.com/courierbus/courier/cluster"
	"github.com/courierbus/courier/internal/natscluster"
)

// A node is the bus's Store: it keeps the Store contract that the memory
// and Badger stores keep. Each store of the suite is a stream of its own
// on one NATS server; Reopen is a new node on the same stream, as a
// restarted process would make.
func TestStoreContract(t *testing.T) {
	servers, err := natscluster.Start(1, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer servers.Shutdown()
	var streams atomic.Int64
	type opened struct {
		node *cluster.Node
		nc   *nats.Conn
	}
	nodes := map[bus.Store]opened{}
	open := func(t *testing.T, stream string) bus.Store {
		nc, err := nats.Connect(servers.URL(0))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		node, err := cluster.New(ctx, nc, cluster.Config{Stream: stream, Prefix: "c" + stream})
		if err != nil {
			nc.Close()
			t.Fatal(err)
		}
		nodes[node] = opened{node, nc}
		return node
	}
	closeStore := func(t *testing.T, s bus.Store) {
		o, ok := nodes[s]
		if !ok {
			return
		}
		delete(nodes, s)
		o.node.Close()
		o.nc.Close()
	}
	bustest.TestStore(t, bustest.StoreHarness{
		New: func(t *testing.T) bus.Store {
			return open(t, fmt.Sprintf("S%d", streams.Add(1)))
		},
		Close: closeStore,
		Reopen: func(t *testing.T, s bus.Store) bus.Store {
			stream := nodes[s].node.Stream()
			closeStore(t, s)
			return open(t, stream)
		},
	})
}
