package bus

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// entry is one published message as the bus holds it. It is written before
// it is dispatched and read-only afterwards, except for its lazily made
// bytes and its reference count.
type entry struct {
	topic *topicState
	seq   uint64
	epoch uint64 // the topic's epoch when the message was given seq
	at    int64  // publish time: nanoseconds since the bus started (see Bus.now)
	meta  *meta  // nil for a publish without filters, id or headers
	val   valuer

	enc atomic.Pointer[encoded] // the value's bytes, made on first use
}

// meta is what a publish may add to a message beyond its value.
type meta struct {
	publisherID  string
	headers      map[string]string
	to, except   []string
	exceptMember string
}

// noMeta stands for the meta of a message that has none. It is never
// written.
var noMeta meta

func (m *meta) empty() bool {
	return m.publisherID == "" && m.headers == nil && m.to == nil && m.except == nil && m.exceptMember == ""
}

func (e *entry) m() *meta {
	if e.meta == nil {
		return &noMeta
	}
	return e.meta
}

// valuer gives access to an entry's value whatever its type; the typed
// entry behind it is reached by a type assertion on the hot path.
type valuer interface {
	anyValue() any
}

type valueEntry[T any] struct {
	entry
	v T
}

func (e *valueEntry[T]) anyValue() any { return e.v }

// newEntry returns an entry holding v.
func newEntry[T any](ts *topicState, v T) *entry {
	te := &valueEntry[T]{v: v}
	te.entry.topic = ts
	te.entry.epoch = ts.epoch.Load()
	te.entry.val = te
	return &te.entry
}

// encoded holds a message's bytes. It is apart from the entry so that a
// message nobody needs as bytes carries no room for them.
type encoded struct {
	once sync.Once
	data []byte
	err  error
}

// setBytes records bytes the entry was made from.
func (e *entry) setBytes(data []byte) {
	p := &encoded{data: data}
	p.once.Do(func() {})
	e.enc.Store(p)
}

// bytes encodes the value once and shares the result with every caller.
func (e *entry) bytes() ([]byte, error) {
	p := e.enc.Load()
	if p == nil {
		p = new(encoded)
		if !e.enc.CompareAndSwap(nil, p) {
			p = e.enc.Load()
		}
	}
	p.once.Do(func() { p.data, p.err = e.topic.codecOf().Encode(e.val.anyValue()) })
	return p.data, p.err
}

// valueOf returns e's value as a T: directly when e holds a T, decoded from
// its bytes otherwise (a topic that was raw before it was typed).
func valueOf[T any](e *entry) (T, error) {
	if te, ok := e.val.(*valueEntry[T]); ok {
		return te.v, nil
	}
	var v T
	data, err := e.bytes()
	if err == nil {
		err = e.topic.codecOf().Decode(data, &v)
	}
	return v, err
}

// Message is one delivery of a message to a handler. Value is the published
// value; the methods describe the message and, under [ManualAck], settle
// it. A Message stays valid after the handler returns and may be handed to
// another goroutine.
type Message[T any] struct {
	Value T

	e       *entry
	attempt int
	d       *delivery
}

// Topic returns the topic the message was published to.
func (m Message[T]) Topic() string { return m.e.topic.name }

// Seq returns the message's sequence number in its topic (0 for a volatile
// publish).
func (m Message[T]) Seq() uint64 { return m.e.seq }

// Position returns the message's stream position.
func (m Message[T]) Position() Position { return Position{Epoch: m.e.epoch, Seq: m.e.seq} }

// Time returns when the message was published.
func (m Message[T]) Time() time.Time { return m.e.topic.b.wall(m.e.at) }

// PublisherID returns the publisher's de-duplication id, or "".
func (m Message[T]) PublisherID() string { return m.e.m().publisherID }

// Header returns the value of header k, or "".
func (m Message[T]) Header(k string) string { return m.e.m().headers[k] }

// Headers returns the message's headers. The map is shared: do not change it.
func (m Message[T]) Headers() map[string]string { return m.e.m().headers }

// Rooms returns the rooms the message was addressed to with [To], or nil.
func (m Message[T]) Rooms() []string { return m.e.m().to }

// Except returns the rooms excluded with [Except], or nil.
func (m Message[T]) Except() []string { return m.e.m().except }

// ExceptMember returns the member excluded with [ExceptMember], or "".
func (m Message[T]) ExceptMember() string { return m.e.m().exceptMember }

// Reaches reports whether the message's room filters ([To], [Except],
// [ExceptMember]) let it reach member mem, given mem's rooms now. A nil mem
// stands for a subscriber without an owner. Code that fans messages out
// itself, such as a bridge, uses it to keep the bus's addressing rules.
func (m Message[T]) Reaches(mem *Member) bool {
	return reaches(m.e.m(), mem)
}

// Attempt returns which delivery attempt this is, from 1.
func (m Message[T]) Attempt() int { return m.attempt }

// Data returns the encoded value. It is encoded at most once per message
// and shared with every other consumer of its bytes; do not change it.
func (m Message[T]) Data() ([]byte, error) { return m.e.bytes() }

// Ack acknowledges the message. ManualAck subscriptions only.
func (m Message[T]) Ack() error { return m.d.settle(outcome{kind: outAck}) }

// Nack reports a failed attempt: the message is redelivered after delay (or
// after the subscription's backoff when delay is 0), or dead-lettered when
// it has had its MaxDeliver attempts. ManualAck subscriptions only.
func (m Message[T]) Nack(delay time.Duration) error {
	return m.d.settle(outcome{kind: outNack, delay: delay})
}

// Term gives up on the message: no redelivery, no dead letter. ManualAck
// subscriptions only.
func (m Message[T]) Term() error { return m.d.settle(outcome{kind: outTerm}) }

// InProgress tells the bus the handler is still at work: the AckWait
// clock of the acknowledgement starts again (the handler's context keeps
// its deadline). ManualAck subscriptions only.
func (m Message[T]) InProgress() error { return m.d.touch() }

type outcomeKind uint8

const (
	outAck outcomeKind = iota + 1
	outNack
	outTerm
	outFail // the handler returned an error or panicked
)

type outcome struct {
	kind  outcomeKind
	delay time.Duration
	err   error
}

// handlerKey marks a handler's context with its subscription, so that a
// handler publishing into its own full queue gets ErrQueueFull rather than
// a deadlock.
type handlerKey struct{}

func handlerSub(ctx context.Context) *Subscription {
	s, _ := ctx.Value(handlerKey{}).(*Subscription)
	return s
}
