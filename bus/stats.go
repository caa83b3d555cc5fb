package bus

import (
	"slices"
	"strings"
	"sync/atomic"
)

type topicCounters struct {
	delivered, redelivered, deadLettered, dropped atomic.Uint64
}

type subCounters struct {
	delivered, redelivered, deadLettered, dropped atomic.Uint64
}

// TopicStats is a snapshot of one topic's counters.
type TopicStats struct {
	Name         string
	Epoch        uint64
	Last         uint64 // last sequence number
	History      int    // messages in the in-memory ring
	Published    uint64 // messages published (volatile ones too)
	Delivered    uint64 // first deliveries, over all subscriptions
	Redelivered  uint64 // further attempts
	DeadLettered uint64
	Dropped      uint64 // by full queues, over all subscriptions
	Persisted    bool
}

// SubscriptionStats is a snapshot of one subscription's counters.
type SubscriptionStats struct {
	Pattern      string
	Queue        string // queue group, or ""
	Durable      string // durable name, or ""
	Owner        string // owning member's id, or ""
	Volatile     bool
	Delivered    uint64
	Redelivered  uint64
	DeadLettered uint64
	Dropped      uint64 // by DropOldest or DropNewest, or volatile publishes that found no room
	QueueLen     int    // messages queued, not yet handed to the handler
	Pending      int    // messages in flight: handed to the handler, not settled
	Backlog      int    // history still to catch up
}

// Stats is a snapshot of the bus's counters.
type Stats struct {
	Topics        []TopicStats        // sorted by name
	Subscriptions []SubscriptionStats // sorted by pattern
	Rooms         int
	Members       int
}

// Stats returns a snapshot of every topic's and subscription's counters.
// It is safe for concurrent use and takes no lock that a publish holds for
// long.
func (b *Bus) Stats() Stats {
	b.mu.RLock()
	topics := make([]*topicState, 0, len(b.topics))
	for _, ts := range b.topics {
		topics = append(topics, ts)
	}
	subs := make([]*Subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.RUnlock()
	var st Stats
	for _, ts := range topics {
		ts.pubMu.Lock()
		_, n := ts.hist.bounds()
		last, published := ts.last, ts.published
		ts.pubMu.Unlock()
		st.Topics = append(st.Topics, TopicStats{
			Name: ts.name, Epoch: ts.epoch.Load(), Last: last, History: n, Persisted: ts.persisted,
			Published: published, Delivered: ts.stats.delivered.Load(),
			Redelivered: ts.stats.redelivered.Load(), DeadLettered: ts.stats.deadLettered.Load(),
			Dropped: ts.stats.dropped.Load(),
		})
	}
	for _, s := range subs {
		st.Subscriptions = append(st.Subscriptions, s.Stats())
	}
	slices.SortFunc(st.Topics, func(a, b TopicStats) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(st.Subscriptions, func(a, b SubscriptionStats) int { return strings.Compare(a.Pattern, b.Pattern) })
	b.roomMu.RLock()
	st.Rooms, st.Members = len(b.rooms), len(b.members)
	b.roomMu.RUnlock()
	return st
}

// Stats returns a snapshot of the subscription's counters.
func (s *Subscription) Stats() SubscriptionStats {
	st := SubscriptionStats{
		Pattern: s.pattern, Queue: s.cfg.group, Durable: s.cfg.durable, Volatile: s.cfg.volatile,
		Delivered: s.stats.delivered.Load(), Redelivered: s.stats.redelivered.Load(),
		DeadLettered: s.stats.deadLettered.Load(), Dropped: s.stats.dropped.Load(),
	}
	if s.cfg.owner != nil {
		st.Owner = s.cfg.owner.id
	}
	s.mu.Lock()
	st.QueueLen = len(s.q) - s.qh
	st.Pending = int(s.inFlight.Load())
	st.Backlog = len(s.backlog)
	if s.cursor < s.liveStart {
		st.Backlog += int(s.liveStart - s.cursor)
	}
	s.mu.Unlock()
	return st
}
