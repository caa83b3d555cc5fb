// Package cluster lets several processes share one Courier bus through
// NATS: a publish on any node reaches the matching subscriptions of every
// node once; a topic's positions (epoch, seq) mean the same everywhere, so
// a client whose node goes away reconnects to another and continues with
// nothing missed and nothing repeated; rooms and presence, queue groups,
// request/reply and durable consumers span the nodes. No sticky sessions.
//
// A [Node] is a [bus.Broker]: give it to the bus with [bus.WithBroker].
//
//	nc, err := nats.Connect(urls, nats.MaxReconnects(-1))
//	node, err := cluster.New(ctx, nc, cluster.Config{Name: "web-1", Replicas: 3})
//	b, err := bus.New(bus.WithBroker(node))
//	// ... use b, mount a bridge over it ...
//	b.Close(); node.Close(); nc.Close()
//
// The topics' logs live in one JetStream stream (default "COURIER"), so
// they outlive every node; durable positions and presence in key-value
// buckets named after it. What each operation promises across nodes, and
// what happens while NATS is unreachable (publishes fail with
// [ErrUnavailable]; nodes recover by themselves), is written in
// docs/cluster.md with the test behind each line. So is durability: an
// acknowledged publish is on a JetStream quorum and survives a power cut
// of the servers when they run with sync_interval: always; under the
// default a power cut can lose it, and the topic then takes a new epoch
// rather than giving its sequence numbers again.
package cluster
