package bus

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Option configures a [Bus] in [New].
type Option interface{ applyBus(*busConfig) }

// TopicOption configures a topic in [NewTopic] and [NewEndpoint]. A
// [HistoryOption] also serves as a bus-wide default in [New].
type TopicOption interface{ applyTopic(*topicConfig) }

// PublishOption configures one Publish.
// Its method works on a copy rather than a pointer so that the
// configuration of a publish stays on the publisher's stack.
type PublishOption interface {
	applyPublish(publishConfig) publishConfig
}

// SubscribeOption configures one Subscribe.
type SubscribeOption interface{ applySubscribe(*subscribeConfig) }

// DeliveryOption is accepted by both Publish and Subscribe.
type DeliveryOption interface {
	PublishOption
	SubscribeOption
}

// HistoryOption is accepted by both New (the default for every topic) and
// NewTopic (one topic).
type HistoryOption interface {
	Option
	TopicOption
}

type busConfig struct {
	logger       *slog.Logger
	store        Store
	broker       Broker
	topic        topicConfig
	dedupe       time.Duration
	maxTopics    int
	shutdownTick time.Duration
}

type topicConfig struct {
	ctx        context.Context // of the NewTopic call, nil for Background
	historyLen int
	historyAge time.Duration
	codec      Codec
	ephemeral  bool
}

type publishConfig struct {
	volatile bool
	meta     *meta // made by the first option that needs it
}

// md returns c's meta, making it.
func (c *publishConfig) md() *meta {
	if c.meta == nil {
		c.meta = new(meta)
	}
	return c.meta
}

// Policy is what a subscription does when its queue is full.
type Policy uint8

const (
	// Block makes the publisher wait, within its context, until the queue
	// has room. The default for at-least-once subscriptions.
	Block Policy = iota + 1
	// DropOldest discards the oldest queued message to make room. Volatile
	// subscriptions only.
	DropOldest
	// DropNewest discards the message being published. Volatile
	// subscriptions only, and their default.
	DropNewest
	// Disconnect ends the subscription with [ErrSlowConsumer]. For
	// at-least-once delivery nothing is lost: a durable consumer or a
	// bridge session resumes from history.
	Disconnect
)

func (p Policy) String() string {
	switch p {
	case Block:
		return "block"
	case DropOldest:
		return "drop-oldest"
	case DropNewest:
		return "drop-newest"
	case Disconnect:
		return "disconnect"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

type subscribeConfig struct {
	ctx         context.Context // of the Subscribe call, nil for Background
	volatile    bool
	ackWait     time.Duration
	maxDeliver  int
	backoff     func(attempt int) time.Duration
	maxInFlight int
	queueSize   int
	policy      Policy
	group       string
	durable     string
	start       Start
	owner       *Member
	manual      bool
	unfiltered  bool
	onEnd       func(error)
}

// ---- bus options

type loggerOpt struct{ l *slog.Logger }

func (o loggerOpt) applyBus(c *busConfig) { c.logger = o.l }

// WithLogger sends the bus's logs (recovered panics, dead letters, store
// errors) to l. By default they are discarded.
func WithLogger(l *slog.Logger) Option { return loggerOpt{l} }

type storeOpt struct{ s Store }

func (o storeOpt) applyBus(c *busConfig) { c.store = o.s }

// WithStore keeps every topic's log and every durable consumer's position in
// s, so they outlive the process when s does (see package persist). Topics
// made with [Ephemeral] stay in memory. The bus does not close s. Without it,
// history is an in-memory ring per topic and durable positions live in a
// [MemoryStore].
func WithStore(s Store) Option { return storeOpt{s} }

type maxTopicsOpt struct{ n int }

func (o maxTopicsOpt) applyBus(c *busConfig) { c.maxTopics = o.n }

// MaxTopics bounds how many topics the bus holds, its own ("$dead.<topic>",
// "$rooms.<room>") included: creating one more is [ErrTooManyTopics]. A
// topic costs a few hundred bytes and its history ring; where untrusted
// clients may name new topics or rooms (a bridge exposing a wildcard for
// Publish or rooms for Join), set it. Default 0: no bound.
func MaxTopics(n int) Option { return maxTopicsOpt{n} }

type dedupeOpt struct{ d time.Duration }

func (o dedupeOpt) applyBus(c *busConfig) { c.dedupe = o.d }

// DedupeWindow sets how long a [PublisherID] is remembered: a second
// publish with the same id on the same topic within d returns the first
// one's sequence number and delivers nothing. Default 2 minutes.
func DedupeWindow(d time.Duration) Option { return dedupeOpt{d} }

type historyOpt struct {
	n   int
	age time.Duration
}

func (o historyOpt) applyBus(c *busConfig)     { o.applyTopic(&c.topic) }
func (o historyOpt) applyTopic(c *topicConfig) { c.historyLen, c.historyAge = o.n, o.age }

// History bounds the in-memory history ring of a topic (or, given to New, of
// every topic) to the newest n messages that are no older than age (0: no
// age limit). Default 1024 messages, no age limit. With a Store, the ring is
// a cache in front of the store's log and n may be small.
func History(n int, age time.Duration) HistoryOption { return historyOpt{n, age} }

// ---- topic options

type codecOpt struct{ c Codec }

func (o codecOpt) applyTopic(c *topicConfig) { c.codec = o.c }

// WithCodec sets how the topic's values become bytes (for a store, a bridge
// or a wildcard subscriber's Data). Default [JSON].
func WithCodec(c Codec) TopicOption { return codecOpt{c} }

type ephemeralOpt struct{}

func (ephemeralOpt) applyTopic(c *topicConfig) { c.ephemeral = true }

// Ephemeral keeps a topic's history in memory even when the bus has a Store.
func Ephemeral() TopicOption { return ephemeralOpt{} }

// CallOption is accepted by [NewTopic] and by Subscribe ([Topic.Subscribe],
// [Bus.Subscribe]).
type CallOption interface {
	TopicOption
	SubscribeOption
}

type ctxOpt struct{ ctx context.Context }

func (o ctxOpt) applyTopic(c *topicConfig)         { c.ctx = o.ctx }
func (o ctxOpt) applySubscribe(c *subscribeConfig) { c.ctx = o.ctx }

// Context bounds the store and broker calls that NewTopic and Subscribe
// may make: reading a persisted topic's state and its de-duplication
// window, a durable consumer's position, where a start position falls in
// the log, and registering a queue group with the broker. If ctx ends
// first, the call returns an error wrapping ctx.Err() and has made no
// topic and no subscription. It bounds only the call: a subscription's
// deliveries and a topic's publishes do not use ctx. Default: no bound on
// the store, and 5 seconds for the broker's queue-group registration.
// ctx must not be nil ([ErrInvalidOption]).
func Context(ctx context.Context) CallOption { return ctxOpt{ctx} }

// callCtx returns the context of a call, Background when none was given.
func callCtx(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// subscribeCtx finds the Context option among opts.
func subscribeCtx(opts []SubscribeOption) context.Context {
	var ctx context.Context
	for _, o := range opts {
		if c, ok := o.(ctxOpt); ok {
			ctx = c.ctx
		}
	}
	return callCtx(ctx)
}

// ---- publish and subscribe options

type volatileOpt struct{}

func (volatileOpt) applyPublish(c publishConfig) publishConfig { c.volatile = true; return c }
func (volatileOpt) applySubscribe(c *subscribeConfig)          { c.volatile = true }

// Volatile asks for at-most-once delivery. On Publish: the message gets no
// sequence number (Publish returns 0), is not kept in history, is never
// retried, and is dropped by every full queue except those of volatile
// subscriptions that asked for [Block]. On Subscribe: messages are never
// retried and are dropped when the queue is full (DropNewest unless
// [OnFull] says otherwise).
func Volatile() DeliveryOption { return volatileOpt{} }

type toOpt struct{ rooms []string }

func (o toOpt) applyPublish(c publishConfig) publishConfig {
	md := c.md()
	md.to = append(md.to, o.rooms...)
	return c
}

// To addresses the message to the members of these rooms: it reaches the
// matching subscriptions owned by a member of any of them, once each.
// Subscriptions without an owner receive no addressed message.
func To(rooms ...string) PublishOption { return toOpt{rooms} }

type exceptOpt struct{ rooms []string }

func (o exceptOpt) applyPublish(c publishConfig) publishConfig {
	md := c.md()
	md.except = append(md.except, o.rooms...)
	return c
}

// Except keeps the message from the subscriptions of members in any of
// these rooms.
func Except(rooms ...string) PublishOption { return exceptOpt{rooms} }

type exceptMemberOpt struct{ id string }

func (o exceptMemberOpt) applyPublish(c publishConfig) publishConfig {
	c.md().exceptMember = o.id
	return c
}

// ExceptMember keeps the message from the subscriptions of one member,
// typically the sender.
func ExceptMember(id string) PublishOption { return exceptMemberOpt{id} }

type publisherIDOpt struct{ id string }

func (o publisherIDOpt) applyPublish(c publishConfig) publishConfig {
	c.md().publisherID = o.id
	return c
}

// PublisherID sets the message's de-duplication id (see [DedupeWindow]).
func PublisherID(id string) PublishOption { return publisherIDOpt{id} }

type headersOpt struct{ h map[string]string }

func (o headersOpt) applyPublish(c publishConfig) publishConfig {
	c.md().headers = o.h
	return c
}

// Headers attaches h to the message. The bus keeps h as it is: do not change
// it after Publish.
func Headers(h map[string]string) PublishOption { return headersOpt{h} }

type ackWaitOpt struct{ d time.Duration }

func (o ackWaitOpt) applySubscribe(c *subscribeConfig) { c.ackWait = o.d }

// AckWait sets how long a delivery may stay unacknowledged before it is
// redelivered. Default 30s. Each delivery attempt's handler context has
// the deadline AckWait from the start of the delivery and ends then, when
// the handler returns, or when the subscription ends, whichever is first;
// it is the delivery's own, so a handler may keep it and pass it on. A
// [Volatile] subscription without [ManualAck] has no AckWait: its handlers
// get the subscription's context, which ends when the subscription does.
func AckWait(d time.Duration) SubscribeOption { return ackWaitOpt{d} }

type maxDeliverOpt struct{ n int }

func (o maxDeliverOpt) applySubscribe(c *subscribeConfig) { c.maxDeliver = o.n }

// MaxDeliver sets how many times a message is tried before it goes to the
// dead-letter topic. Default 5.
func MaxDeliver(n int) SubscribeOption { return maxDeliverOpt{n} }

type backoffOpt struct{ f func(int) time.Duration }

func (o backoffOpt) applySubscribe(c *subscribeConfig) { c.backoff = o.f }

// Backoff sets the wait before redelivery attempt n+1 after attempt n
// failed. Default: 100ms doubling per attempt, at most 5s.
func Backoff(f func(attempt int) time.Duration) SubscribeOption { return backoffOpt{f} }

// ExponentialBackoff returns a backoff of base doubling per attempt, capped
// at limit.
func ExponentialBackoff(base, limit time.Duration) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		d := base
		for i := 1; i < attempt && d < limit; i++ {
			d *= 2
		}
		return min(d, limit)
	}
}

type maxInFlightOpt struct{ n int }

func (o maxInFlightOpt) applySubscribe(c *subscribeConfig) { c.maxInFlight = o.n }

// MaxInFlight sets how many messages the subscription handles at once.
// Default 1: messages arrive in sequence order and a redelivery of n comes
// before n+1. Above 1 the handler runs on n goroutines and order is not
// kept.
func MaxInFlight(n int) SubscribeOption { return maxInFlightOpt{n} }

type queueSizeOpt struct{ n int }

func (o queueSizeOpt) applySubscribe(c *subscribeConfig) { c.queueSize = o.n }

// QueueSize bounds the subscription's queue. Default 1024.
func QueueSize(n int) SubscribeOption { return queueSizeOpt{n} }

type onFullOpt struct{ p Policy }

func (o onFullOpt) applySubscribe(c *subscribeConfig) { c.policy = o.p }

// OnFull sets what happens when the queue is full. Defaults: [Block] for
// at-least-once, [DropNewest] for volatile subscriptions. A volatile
// subscription may ask for Block to get back-pressure without retries: it is
// the only kind a [Volatile] publish waits for; in every other full queue a
// volatile publish is dropped.
func OnFull(p Policy) SubscribeOption { return onFullOpt{p} }

type groupOpt struct{ g string }

func (o groupOpt) applySubscribe(c *subscribeConfig) { c.group = o.g }

// QueueGroup puts the subscription in queue group g: each message goes to one
// member of the group (round robin over those with room).
func QueueGroup(g string) SubscribeOption { return groupOpt{g} }

type durableOpt struct{ name string }

func (o durableOpt) applySubscribe(c *subscribeConfig) { c.durable = o.name }

// Durable names the consumer: its acknowledged position and unacknowledged
// set outlive the subscription (and, with a persistent Store, the process).
// Subscribing again with the same name resumes after the last acknowledged
// message and redelivers every unacknowledged one. Exact topics only.
func Durable(name string) SubscribeOption { return durableOpt{name} }

type ownerOpt struct{ m *Member }

func (o ownerOpt) applySubscribe(c *subscribeConfig) { c.owner = o.m }

// Owner makes member m the subscription's owner: messages addressed with
// [To] and [Except] are filtered by m's rooms, and the subscription ends
// when m is removed.
func Owner(m *Member) SubscribeOption { return ownerOpt{m} }

type manualOpt struct{}

func (manualOpt) applySubscribe(c *subscribeConfig) { c.manual = true }

// ManualAck leaves acknowledgement to the handler: returning nil does not
// acknowledge, and the message stays in flight until [Message.Ack],
// [Message.Nack], [Message.Term] or AckWait. Returning an error still
// counts as a failed attempt.
func ManualAck() SubscribeOption { return manualOpt{} }

type unfilteredOpt struct{}

func (unfilteredOpt) applySubscribe(c *subscribeConfig) { c.unfiltered = true }

// Unfiltered delivers every matching message whatever its room filters
// ([To], [Except], [ExceptMember]), for a subscriber that fans messages
// out itself — a bridge serving many members from one subscription — and
// applies the filters per recipient with [Message.Reaches].
func Unfiltered() SubscribeOption { return unfilteredOpt{} }

type onEndOpt struct{ f func(error) }

func (o onEndOpt) applySubscribe(c *subscribeConfig) { c.onEnd = o.f }

// OnEnd calls f once when the subscription ends, with nil after Unsubscribe
// or Close and with the cause otherwise ([ErrSlowConsumer],
// [ErrMemberRemoved]). f runs on the subscription's goroutine, after its
// last delivery.
func OnEnd(f func(err error)) SubscribeOption { return onEndOpt{f} }

// Start is where a subscription begins in its topic's stream.
type Start struct {
	kind uint8
	seq  uint64
	pos  Position
	t    time.Time
}

const (
	startNew uint8 = iota
	startFirst
	startSeq
	startTime
	startAfter
)

func (s Start) applySubscribe(c *subscribeConfig) { c.start = s }

// StartNew begins with the next message published. The default.
func StartNew() Start { return Start{kind: startNew} }

// StartFirst begins with the oldest message the history holds.
func StartFirst() Start { return Start{kind: startFirst} }

// StartSeq begins with sequence number seq; it fails with [ErrNotCovered]
// if the history no longer holds seq.
func StartSeq(seq uint64) Start { return Start{kind: startSeq, seq: seq} }

// StartTime begins with the first message published at or after t that the
// history holds.
func StartTime(t time.Time) Start { return Start{kind: startTime, t: t} }

// StartAfter resumes after position p: every later message, in order, or
// [ErrNotCovered] when p's epoch is not the topic's or the history no longer
// reaches back to it.
func StartAfter(p Position) Start { return Start{kind: startAfter, pos: p} }

// Position is a place in a topic's stream: its epoch and a sequence number.
type Position struct {
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
}
