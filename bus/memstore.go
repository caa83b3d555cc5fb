package bus

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// MemoryStore is a [Store] that keeps everything in memory: what it holds is
// gone when the process ends, and every topic gets a new epoch in a new
// MemoryStore. It is the bus's default home for durable consumer positions.
// It is safe for concurrent use.
type MemoryStore struct {
	mu        sync.Mutex
	closed    bool
	maxRecs   int
	maxAge    time.Duration
	topics    map[string]*memTopic
	consumers map[[2]string]ConsumerState
}

type memTopic struct {
	epoch uint64
	first uint64 // seq of recs[0]
	last  uint64
	recs  []Record
}

// MemoryStoreOption configures a [MemoryStore].
type MemoryStoreOption interface{ applyMemoryStore(*MemoryStore) }

type memLimit struct {
	n   int
	age time.Duration
}

func (o memLimit) applyMemoryStore(s *MemoryStore) {
	if o.n > 0 {
		s.maxRecs = o.n
	}
	if o.age > 0 {
		s.maxAge = o.age
	}
}

// MemoryRetention bounds each topic of a [MemoryStore] to the newest n
// records no older than age; zero leaves that bound at its default
// (100,000 records, no age limit).
func MemoryRetention(n int, age time.Duration) MemoryStoreOption { return memLimit{n, age} }

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore(opts ...MemoryStoreOption) *MemoryStore {
	s := &MemoryStore{
		maxRecs:   100_000,
		topics:    make(map[string]*memTopic),
		consumers: make(map[[2]string]ConsumerState),
	}
	for _, o := range opts {
		o.applyMemoryStore(s)
	}
	return s
}

func (s *MemoryStore) topic(name string) *memTopic {
	t := s.topics[name]
	if t == nil {
		t = &memTopic{epoch: newEpoch()}
		s.topics[name] = t
	}
	return t
}

// newEpoch returns a random non-zero epoch.
func newEpoch() uint64 {
	for {
		if e := rand.Uint64(); e != 0 {
			return e
		}
	}
}

func (s *MemoryStore) check(ctx context.Context) error {
	if s.closed {
		return ErrClosed
	}
	return ctx.Err()
}

// Topic implements [Store].
func (s *MemoryStore) Topic(ctx context.Context, topic string) (TopicState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return TopicState{}, err
	}
	t := s.topic(topic)
	s.trim(t, time.Now())
	return t.state(), nil
}

func (t *memTopic) state() TopicState {
	st := TopicState{Epoch: t.epoch, Last: t.last}
	if len(t.recs) > 0 {
		st.First = t.first
	}
	return st
}

// Append implements [Store].
func (s *MemoryStore) Append(ctx context.Context, topic string, r Record) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	t := s.topic(topic)
	t.last++
	r.Seq = t.last
	r.Data = slices.Clone(r.Data)
	if len(t.recs) == 0 {
		t.first = r.Seq
	}
	t.recs = append(t.recs, r)
	s.trim(t, time.Now())
	return r.Seq, nil
}

// trim drops records past the count and age limits.
func (s *MemoryStore) trim(t *memTopic, now time.Time) {
	drop := max(len(t.recs)-s.maxRecs, 0)
	if s.maxAge > 0 {
		for drop < len(t.recs) && now.Sub(t.recs[drop].Time) > s.maxAge {
			drop++
		}
	}
	if drop == 0 {
		return
	}
	clear(t.recs[:drop])
	t.recs = t.recs[drop:]
	t.first += uint64(drop)
	if len(t.recs) == 0 {
		t.recs = nil
		t.first = t.last + 1
	}
}

// Read implements [Store].
func (s *MemoryStore) Read(ctx context.Context, topic string, from uint64, limit int, buf []Record) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return buf, err
	}
	t := s.topic(topic)
	s.trim(t, time.Now())
	if from == 0 {
		from = 1
	}
	if from > t.last {
		return buf, nil
	}
	if from < t.first || len(t.recs) == 0 {
		return buf, ErrNotCovered
	}
	i := int(from - t.first)
	for ; i < len(t.recs) && limit > 0; i++ {
		buf = append(buf, t.recs[i])
		limit--
	}
	return buf, nil
}

// SeqAt implements [Store].
func (s *MemoryStore) SeqAt(ctx context.Context, topic string, at time.Time) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	t := s.topic(topic)
	i, _ := slices.BinarySearchFunc(t.recs, at, func(r Record, at time.Time) int { return r.Time.Compare(at) })
	if i == len(t.recs) {
		return t.last + 1, nil
	}
	return t.recs[i].Seq, nil
}

// Consumer implements [Store].
func (s *MemoryStore) Consumer(ctx context.Context, topic, name string) (ConsumerState, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return ConsumerState{}, false, err
	}
	c, ok := s.consumers[[2]string{topic, name}]
	c.Acked = slices.Clone(c.Acked)
	return c, ok, nil
}

// SaveConsumer implements [Store].
func (s *MemoryStore) SaveConsumer(ctx context.Context, topic, name string, c ConsumerState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	c.Acked = slices.Clone(c.Acked)
	s.consumers[[2]string{topic, name}] = c
	return nil
}

// DeleteConsumer implements [Store].
func (s *MemoryStore) DeleteConsumer(ctx context.Context, topic, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	delete(s.consumers, [2]string{topic, name})
	return nil
}

// Close releases the store's memory; later calls return [ErrClosed]. It may
// be called more than once.
func (s *MemoryStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.topics = nil
	s.consumers = nil
	return nil
}
