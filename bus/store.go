package bus

import (
	"context"
	"time"
)

// Record is one message as a [Store] keeps it: the encoded value and what the
// bus needs to deliver it again after a restart.
type Record struct {
	// Seq is the message's sequence number in its topic, assigned by the
	// store on Append (from 1, no gaps).
	Seq uint64
	// Time is when the message was published.
	Time time.Time
	// PublisherID is the publisher's de-duplication id, or "".
	PublisherID string
	// Headers are the message's headers, or nil.
	Headers map[string]string
	// To, Except and ExceptMember are the publish-time room filters, kept so
	// that a replay reaches the same audience.
	To           []string
	Except       []string
	ExceptMember string
	// Data is the encoded value.
	Data []byte
	// Epoch, when not 0, marks a record a [Broker] hands a [Feed] as the
	// first of a new epoch of its topic: the shared history went back to
	// Seq-1 (acknowledged records past it were lost), and goes on under
	// Epoch. Stores leave it 0; the bus ignores it elsewhere.
	Epoch uint64
}

// TopicState is what a [Store] holds for one topic.
type TopicState struct {
	// Epoch names this topic's history. It is chosen when the store first
	// sees the topic and changes only when the history is lost.
	Epoch uint64
	// First is the lowest sequence number still held (0 when empty); Last is
	// the highest ever assigned (0 when none).
	First, Last uint64
}

// ConsumerState is a durable consumer's position in a topic: every message
// up to and including AckFloor is acknowledged, Acked lists the acknowledged
// sequence numbers above the floor (ascending), and Delivered is the highest
// sequence number handed to the consumer. The unacknowledged set is
// (AckFloor, Delivered] minus Acked.
type ConsumerState struct {
	AckFloor  uint64
	Delivered uint64
	Acked     []uint64
}

// Store keeps topic logs and durable consumer positions. The bus calls it for
// every topic when one is configured with [WithStore], and for durable
// consumers always (an in-memory store by default). persist.Store keeps them
// in Badger; [NewMemoryStore] keeps them in memory.
//
// Implementations must be safe for concurrent use. Methods take a context
// that bounds how long they may wait; cancelling it makes them return
// ctx.Err() without having changed anything they did not report as done.
// After the store is closed, every method returns an error wrapping
// [ErrClosed]. bustest.TestStore, in package bus/bustest, checks a store
// against this contract.
type Store interface {
	// Topic returns the state of topic, creating an empty one (with a new
	// epoch) on first use.
	Topic(ctx context.Context, topic string) (TopicState, error)
	// Append adds r to topic's log and returns the sequence number it was
	// given (r.Seq is ignored). It returns once the record is as durable as
	// the store promises; a returned sequence number is never reused.
	Append(ctx context.Context, topic string, r Record) (seq uint64, err error)
	// Read appends to buf the records of topic with Seq >= from, in order, at
	// most limit of them, and returns the extended slice. If from is below
	// the first record still held, it returns [ErrNotCovered]. Reading past
	// the last record returns buf unchanged. A count limit on retention
	// applies at once: a record past it is not returned, even if its
	// removal from disk comes later.
	Read(ctx context.Context, topic string, from uint64, limit int, buf []Record) ([]Record, error)
	// SeqAt returns the sequence number of the first record of topic
	// published at or after t, or Last+1 when there is none. Record times
	// rise with sequence numbers (the bus appends them so), which lets a
	// store search rather than scan.
	SeqAt(ctx context.Context, topic string, t time.Time) (uint64, error)
	// Consumer returns the saved state of the durable consumer name on
	// topic; ok is false when none was saved.
	Consumer(ctx context.Context, topic, name string) (s ConsumerState, ok bool, err error)
	// SaveConsumer replaces the saved state of the durable consumer.
	SaveConsumer(ctx context.Context, topic, name string, s ConsumerState) error
	// DeleteConsumer forgets the durable consumer. Deleting an unknown one is
	// not an error.
	DeleteConsumer(ctx context.Context, topic, name string) error
}
