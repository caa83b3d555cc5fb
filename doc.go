// Package courier is an event bus that lives inside your Go program: typed
// topics, rooms and ack-tracked delivery; optional persistence in Badger; and
// a WebSocket bridge that lets browsers publish, subscribe, join rooms,
// acknowledge and recover what they missed while offline. There is no broker
// to run. This package holds only this tour; the code is in its
// subpackages.
//
// # The parts
//
//   - [github.com/courierbus/courier/bus]: the core. Typed topics
//     (bus.NewTopic), wildcard subscriptions, rooms and presence, at-least-once
//     delivery with redelivery and dead letters, at-most-once, durable
//     consumers, queue groups, history with (epoch, seq) positions,
//     request/reply. Standard library only.
//   - [github.com/courierbus/courier/persist]: a bus.Store on Badger. Topics
//     and durable consumers survive restarts and kill -9; concurrent
//     publishers share one fsync (group commit).
//   - [github.com/courierbus/courier/bridge]: an http.Handler on melody that
//     you mount on your own mux. Browsers (the embedded courier.js, served at
//     <mount>client.js) and Go programs (bridge/client) speak the wire
//     protocol of docs/protocol.md: sessions that resume after a dropped
//     connection, rooms, acks, requests in both directions, limits and
//     authorization hooks. It serves TypeScript declarations of the exposed
//     topics, generated from their Go types (<mount>topics.d.ts,
//     docs/typescript.md); cmd/courier-ts writes them into a front-end
//     tree.
//   - [github.com/courierbus/courier/cluster]: a bus.Broker on NATS
//     JetStream. Several processes share topics, rooms, presence, queue
//     groups, requests and durable consumers, with positions that mean the
//     same on every node, so a client may reconnect to any of them
//     (docs/cluster.md). One process needs none of it.
//   - [github.com/courierbus/courier/observe]: a Prometheus collector and an
//     admin page over the bridge.
//
// # A tour
//
// A bus in memory, a typed topic, a member in a room, a subscription of
// the member's, a message to the room, and the bridge that lets browsers
// in, on mux (this is the package's example, run by its tests):
//
//	func tour(ctx context.Context, mux *http.ServeMux) error {
//		b, err := bus.New() // in memory; bus.WithStore(st) to persist
//		if err != nil {
//			return err
//		}
//		defer b.Close() // runs last, after the bridge's Close
//
//		type Msg struct{ From, Text string }
//		chat, err := bus.NewTopic[Msg](b, "chat.lobby")
//		if err != nil {
//			return err
//		}
//		alice, err := b.Member("alice")
//		if err != nil {
//			return err
//		}
//		if err := alice.Join(ctx, "lobby"); err != nil {
//			return err
//		}
//		said := make(chan struct{})
//		_, err = chat.Subscribe(func(ctx context.Context, m bus.Message[Msg]) error {
//			fmt.Println(m.Value.From, "says", m.Value.Text)
//			close(said)
//			return nil // acknowledged; an error would mean redelivery
//		}, bus.Owner(alice))
//		if err != nil {
//			return err
//		}
//		if _, err := chat.Publish(ctx, Msg{"bob", "hi"}, bus.To("lobby")); err != nil {
//			return err
//		}
//		<-said
//
//		br, err := bridge.New(b, bridge.Expose("chat.>", bridge.Subscribe, bridge.Publish))
//		if err != nil {
//			return err
//		}
//		defer br.Close()
//		mux.Handle("/bus/", br) // browsers: import "/bus/client.js"
//		return nil
//	}
//
// The delivery contract is docs/semantics.md; the wire protocol is
// docs/protocol.md; measured costs are in docs/benchmarks.md.
package courier
