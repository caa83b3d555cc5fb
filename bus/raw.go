package bus

import (
	"context"
	"fmt"
)

// Subscribe calls h for every message on the topics matching pattern, which
// may hold the wildcards '*' and '>'. The message's Value is the published
// Go value (a json.RawMessage for topics that have no Go type) and Data
// returns its bytes. Options are those of [Topic.Subscribe]; durable names
// and start positions need an exact topic name.
func (b *Bus) Subscribe(pattern string, h func(ctx context.Context, m Message[any]) error, opts ...SubscribeOption) (*Subscription, error) {
	if err := ValidatePattern(pattern); err != nil {
		return nil, err
	}
	deliver := func(ctx context.Context, e *entry, attempt int, d *delivery) error {
		return h(ctx, Message[any]{Value: e.val.anyValue(), e: e, attempt: attempt, d: d})
	}
	var ts *topicState
	if !isPattern(pattern) {
		var err error
		if ts, err = b.topic(subscribeCtx(opts), pattern, nil, nil); err != nil {
			return nil, err
		}
	}
	return b.subscribe(pattern, ts, deliver, opts)
}

// PublishRaw publishes encoded bytes to topic, for callers that have bytes
// rather than a Go value (a bridge, a replay). When the topic is bound to a
// Go type by [NewTopic], data must decode into it ([ErrTypeMismatch]
// otherwise); when it is not, data must be JSON and subscribers get it as a
// json.RawMessage. The bus keeps data: do not change it afterwards.
// Otherwise it behaves as [Topic.Publish].
func (b *Bus) PublishRaw(ctx context.Context, topic string, data []byte, opts ...PublishOption) (uint64, error) {
	if b.closed() {
		return 0, ErrClosed
	}
	if err := ValidateTopic(topic); err != nil {
		return 0, err
	}
	if reserved(topic) {
		return 0, fmt.Errorf("%w: %q is reserved for the bus", ErrInvalidTopic, topic)
	}
	ts, err := b.topic(ctx, topic, nil, nil)
	if err != nil {
		return 0, err
	}
	e, err := ts.rawEntry(data)
	if err != nil {
		return 0, err
	}
	var pc publishConfig
	for _, o := range opts {
		pc = o.applyPublish(pc)
	}
	return ts.publish(ctx, e, &pc)
}

// Position returns the current end of topic's stream: its epoch and the
// last sequence number published (0 when none).
func (b *Bus) Position(ctx context.Context, topic string) (Position, error) {
	if b.closed() {
		return Position{}, ErrClosed
	}
	if err := ValidateTopic(topic); err != nil {
		return Position{}, err
	}
	ts, err := b.topic(ctx, topic, nil, nil)
	if err != nil {
		return Position{}, err
	}
	ts.pubMu.Lock()
	defer ts.pubMu.Unlock()
	return Position{Epoch: ts.epoch.Load(), Seq: ts.last}, nil
}

// Read returns up to limit messages of topic's history from sequence number
// from on, in order, with their Go values (json.RawMessage for topics that
// have no Go type), or [ErrNotCovered] when the history no longer holds
// from.
func (b *Bus) Read(ctx context.Context, topic string, from uint64, limit int) ([]Message[any], error) {
	if b.closed() {
		return nil, ErrClosed
	}
	if err := ValidateTopic(topic); err != nil {
		return nil, err
	}
	ts, err := b.topic(ctx, topic, nil, nil)
	if err != nil {
		return nil, err
	}
	es, err := ts.read(ctx, from, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Message[any], len(es))
	for i, e := range es {
		out[i] = Message[any]{Value: e.val.anyValue(), e: e, attempt: 1}
	}
	return out, nil
}

// DeleteDurable forgets the durable consumer name on topic: its position
// and unacknowledged set. The next subscription with the name starts where
// its Start option says. A durable in use is [ErrDurableActive]; an unknown
// one is not an error.
func (b *Bus) DeleteDurable(ctx context.Context, topic, name string) error {
	if b.closed() {
		return ErrClosed
	}
	b.mu.RLock()
	active := b.durables[[2]string{topic, name}] != nil
	b.mu.RUnlock()
	if active {
		return fmt.Errorf("%w: %q on %q", ErrDurableActive, name, topic)
	}
	if err := b.store.DeleteConsumer(ctx, topic, name); err != nil {
		return fmt.Errorf("bus: delete durable %q on %q: %w", name, topic, err)
	}
	return nil
}

// Bounds is what a topic's history holds: its epoch, the oldest sequence
// number still held (First) and the newest published (Last). First > Last
// when the history holds nothing.
type Bounds struct {
	Epoch, First, Last uint64
}

// Bounds returns what topic's history holds now: a read or a subscription
// from any sequence number in [First, Last+1] is covered.
func (b *Bus) Bounds(ctx context.Context, topic string) (Bounds, error) {
	if b.closed() {
		return Bounds{}, ErrClosed
	}
	if err := ValidateTopic(topic); err != nil {
		return Bounds{}, err
	}
	ts, err := b.topic(ctx, topic, nil, nil)
	if err != nil {
		return Bounds{}, err
	}
	ts.pubMu.Lock()
	first, n := ts.hist.bounds()
	bd := Bounds{Epoch: ts.epoch.Load(), First: first, Last: ts.last}
	ts.pubMu.Unlock()
	if n == 0 {
		bd.First = bd.Last + 1
	}
	if ts.persisted {
		st, err := b.store.Topic(ctx, topic)
		if err != nil {
			return Bounds{}, fmt.Errorf("bus: bounds of %q: %w", topic, err)
		}
		if st.First != 0 {
			bd.First = min(bd.First, st.First)
		}
	}
	return bd, nil
}
