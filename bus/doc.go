// Package bus is Courier's core: an event bus inside the host program, with
// typed topics, wildcard subscriptions, rooms, ack-tracked delivery,
// history and request/reply. It imports only the standard library.
//
//	b, err := bus.New()
//	defer b.Close()
//	orders, err := bus.NewTopic[Order](b, "shop.orders")
//	orders.Subscribe(func(ctx context.Context, m bus.Message[Order]) error {
//		return ship(ctx, m.Value) // nil acknowledges; an error means redelivery
//	})
//	seq, err := orders.Publish(ctx, Order{ID: "A-1"})
//
// The delivery contract — what each mode promises, ordering, back-pressure,
// history and epochs, de-duplication, Close and Shutdown — is written down
// in docs/semantics.md, with the test that holds each statement.
//
// # Topic names
//
// A topic name is dot-separated tokens of [A-Za-z0-9_-], at most 255 bytes:
// "chat.room42.messages". A subscription pattern may use '*' for exactly one
// token and, as its last token, '>' for one or more. Names whose first token
// starts with '$' belong to the bus: "$dead.<topic>" receives dead letters
// ([DeadLetter]) and "$rooms.<room>" room events ([RoomEvent]); wildcards
// never match them unless the pattern names the '$' token. An invalid name
// is [ErrInvalidTopic], never a panic. Subscriptions are indexed in a token
// trie and each topic caches its matches, so a publish does not test every
// pattern.
//
// # Typed topics and values
//
// [NewTopic] binds a name to a Go type; binding it again to another type is
// [ErrTypeMismatch]. In-process subscribers get the published Go value
// itself, never a decoded copy. The value's bytes (for a [Store], a bridge,
// or [Message.Data]) are made at most once per message, when first asked
// for, with the topic's [Codec] (JSON by default). [Bus.Subscribe] takes a
// pattern and delivers [Message] of any: the Go value and, through Data, its
// bytes. [Bus.PublishRaw] publishes bytes, decoded into the topic's type.
//
// # Delivery
//
// By default a subscription is at-least-once and ordered: the handler
// returning nil acknowledges; an error, a panic (recovered and logged) or
// no acknowledgement within [AckWait] means redelivery after a [Backoff];
// after [MaxDeliver] attempts the message goes to "$dead.<topic>". With
// [ManualAck] the handler settles the message itself with [Message.Ack],
// [Message.Nack], [Message.Term] or extends it with [Message.InProgress].
// [Volatile] asks for at-most-once delivery; [QueueGroup] shares messages among
// a group; [Durable] keeps a consumer's position across subscriptions and,
// with a persistent [Store], restarts. Each subscription has a bounded
// queue; [OnFull] chooses [Block], [DropOldest], [DropNewest] or
// [Disconnect] when it is full.
//
// # Members and rooms
//
// [Bus.Member] returns a participant that can [Member.Join] rooms; a
// subscription made with [Owner] belongs to it. A publish with [To] reaches
// the subscriptions of the members of those rooms, once each; [Except] and
// [ExceptMember] take some away. [Bus.RoomMembers] lists a room (presence),
// and joins and leaves are published on "$rooms.<room>". [Member.Remove]
// leaves every room and ends the member's subscriptions.
//
// # History and positions
//
// Every topic keeps its recent messages: a ring of [History] messages in
// memory, and the whole log when the bus has a [Store]. A [Position] is a
// topic's epoch and a sequence number; the epoch of an in-memory topic is
// random per bus, so a position from another incarnation is never mistaken
// for this one. Reading or subscribing from a position the history no
// longer holds is [ErrNotCovered]: never a silent gap.
//
// # Request and reply
//
// [NewEndpoint] makes a typed request/reply topic; [Endpoint.Handle] serves
// it with a bounded pool of goroutines and [Endpoint.Request] waits for the
// reply within its context. A request nobody serves is [ErrNoHandler] at
// once.
//
// # Several processes
//
// [WithBroker] shares a bus's topics, rooms, queue groups, endpoints and
// durable positions with other buses through a [Broker] (package cluster
// implements one on NATS JetStream). Each topic then has one log for all
// of them: a publish on any bus reaches every bus's subscriptions once,
// in one order, and a [Position] means the same on every bus. A bus
// without a broker pays nothing for this.
//
// # Goroutines and Close
//
// Each subscription runs MaxInFlight goroutines and each request handler
// its Concurrency; the bus owns them all. [Bus.Close] ends them and returns
// once they have returned (called from a handler, once all but its own
// have); [Bus.Shutdown] first lets queued deliveries finish. Handlers may publish and subscribe; no user code ever runs under a
// lock of the bus — handlers, codecs, [Store] and [Broker] implementations
// and log handlers included: what the bus needs from a store it reads
// first, then takes its lock and checks again.
package bus
