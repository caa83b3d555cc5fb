package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Subscription is a running subscription. Its methods are safe for
// concurrent use.
type Subscription struct {
	b       *Bus
	pattern string
	ts      *topicState // the exact topic, nil for a wildcard pattern
	cfg     subscribeConfig
	deliver func(ctx context.Context, e *entry, attempt int, d *delivery) error
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	workers atomic.Int32

	qlen     atomic.Int32 // len(q)-qh, readable without mu
	inFlight atomic.Int32 // taken from the queue, not yet done

	mu        sync.Mutex
	cond      sync.Cond
	q         []*entry // live queue: q[qh:]
	qh        int
	waiting   int         // workers waiting in cond
	stopped   atomic.Bool // set when the subscription begins to end
	backlog   []*entry    // history being caught up
	cursor    uint64      // next seq to read from history
	liveStart uint64      // first seq that arrives live; history below it
	skipBelow uint64      // live entries below it are not delivered
	loading   bool
	room      chan struct{} // closed when the queue has room again
	ending    bool
	endErr    error
	durable   *durableState
	saving    bool // a save of the durable position is under way
	saveAgain bool // and another was asked for meanwhile

	stats subCounters
}

type durableState struct {
	floor     uint64
	delivered uint64
	acked     map[uint64]struct{}
}

func (b *Bus) subscribe(pattern string, ts *topicState, deliver func(context.Context, *entry, int, *delivery) error, opts []SubscribeOption) (*Subscription, error) {
	if b.closed() {
		return nil, ErrClosed
	}
	cfg := subscribeConfig{
		ackWait:     30 * time.Second,
		maxDeliver:  5,
		backoff:     ExponentialBackoff(100*time.Millisecond, 5*time.Second),
		maxInFlight: 1,
		queueSize:   1024,
	}
	for _, o := range opts {
		o.applySubscribe(&cfg)
	}
	if cfg.policy == 0 {
		cfg.policy = Block
		if cfg.volatile {
			cfg.policy = DropNewest
		}
	}
	switch {
	case cfg.ackWait <= 0 || cfg.maxDeliver < 1 || cfg.maxInFlight < 1 || cfg.queueSize < 1 || cfg.backoff == nil:
		return nil, fmt.Errorf("%w: AckWait, MaxDeliver, MaxInFlight and QueueSize must be positive", ErrInvalidOption)
	case (cfg.policy == DropOldest || cfg.policy == DropNewest) && !cfg.volatile:
		return nil, fmt.Errorf("%w: %v is for volatile subscriptions", ErrInvalidOption, cfg.policy)
	case cfg.policy > Disconnect:
		return nil, fmt.Errorf("%w: policy %v", ErrInvalidOption, cfg.policy)
	case ts == nil && (cfg.durable != "" || cfg.start.kind != startNew):
		return nil, fmt.Errorf("%w: durable names and start positions need an exact topic, not %q", ErrInvalidOption, pattern)
	case cfg.durable != "" && cfg.volatile:
		return nil, fmt.Errorf("%w: a durable consumer cannot be volatile", ErrInvalidOption)
	case hasNilCtx(opts):
		return nil, fmt.Errorf("%w: nil Context", ErrInvalidOption)
	case cfg.owner != nil && cfg.owner.removed():
		return nil, ErrMemberRemoved
	}
	if cfg.durable != "" {
		if err := ValidateTopic(cfg.durable); err != nil {
			return nil, fmt.Errorf("%w: durable name: %v", ErrInvalidOption, err)
		}
	}
	s := &Subscription{b: b, pattern: pattern, ts: ts, cfg: cfg, deliver: deliver, done: make(chan struct{})}
	s.cond.L = &s.mu
	s.ctx, s.cancel = context.WithCancel(context.WithValue(b.ctx, handlerKey{}, s))
	ctx := callCtx(cfg.ctx)
	cfg.ctx, s.cfg.ctx = nil, nil // the call's, not the subscription's
	if err := s.attach(ctx); err != nil {
		s.cancel()
		return nil, err
	}
	if m := cfg.owner; m != nil && !m.own(s) {
		s.end(ErrMemberRemoved)
	}
	if b.cfg.broker != nil {
		b.shareGroup(ctx, cfg.group, pattern, true)
	}
	return s, nil
}

// Pattern returns the topic or pattern subscribed to.
func (s *Subscription) Pattern() string { return s.pattern }

// Unsubscribe ends the subscription: no handler call starts after it
// returns, queued messages are dropped (a durable consumer keeps its
// position). It does not wait for a running handler, so a handler may
// unsubscribe its own subscription; [Subscription.Done] tells when the
// subscription's goroutines have ended. Later calls return nil.
func (s *Subscription) Unsubscribe() error {
	s.end(nil)
	return nil
}

// Done returns a channel closed when the subscription has ended and its
// goroutines have returned.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns why the subscription ended: nil while it runs and after
// Unsubscribe or Close, otherwise the cause.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endErr
}

func (s *Subscription) end(err error) {
	s.mu.Lock()
	if s.ending {
		s.mu.Unlock()
		return
	}
	s.ending, s.endErr = true, err
	s.stopped.Store(true)
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	s.cancel()
}

// detach removes the subscription from the bus. The last worker calls it.
func (s *Subscription) detach() {
	b := s.b
	if s.durable != nil {
		if err := s.saveDurable(); err != nil && b.closed() {
			b.closeErr(err)
		}
	}
	b.mu.Lock()
	b.trie.remove(s.pattern, s)
	delete(b.subs, s)
	if s.durable != nil {
		key := [2]string{s.ts.name, s.cfg.durable}
		if b.durables[key] == s {
			delete(b.durables, key)
		}
	}
	b.gen.Add(1)
	b.mu.Unlock()
	if m := s.cfg.owner; m != nil {
		m.disown(s)
	}
	if b.cfg.broker != nil {
		b.shareGroup(context.Background(), s.cfg.group, s.pattern, false)
	}
	if errors.Is(s.Err(), ErrSlowConsumer) {
		b.log.Warn("bus: slow subscription disconnected", "pattern", s.pattern, "queue", s.cfg.queueSize)
	}
	if s.cfg.onEnd != nil {
		s.cfg.onEnd(s.Err())
	}
	close(s.done)
}

// full reports whether the queue has reached its size.
func (s *Subscription) full() bool { return int(s.qlen.Load()) >= s.cfg.queueSize }

// busy reports whether s has queued, backlogged or in-flight messages.
func (s *Subscription) busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.ending && (len(s.q) > s.qh || len(s.backlog) > 0 || s.inFlight.Load() > 0 || s.cursor < s.liveStart)
}

// waitRoom blocks until the queue has room, the subscription ends, or ctx
// or the bus ends.
func (s *Subscription) waitRoom(ctx context.Context) error {
	for {
		s.mu.Lock()
		if s.ending || len(s.q)-s.qh < s.cfg.queueSize {
			s.mu.Unlock()
			return nil
		}
		if handlerSub(ctx) == s {
			s.mu.Unlock()
			return fmt.Errorf("%w: publishing from the handler of %q", ErrQueueFull, s.pattern)
		}
		if s.room == nil {
			s.room = make(chan struct{})
		}
		room := s.room
		s.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.b.ctx.Done():
			return ErrClosed
		}
	}
}

// enqueue adds e to the live queue, applying the full-queue policy. It is
// called with the topic's pubMu held and never calls user code.
func (s *Subscription) enqueue(e *entry, volatile bool) {
	s.mu.Lock()
	if s.ending {
		s.mu.Unlock()
		return
	}
	if len(s.q)-s.qh >= s.cfg.queueSize {
		switch {
		case volatile && !s.cfg.volatile || s.cfg.policy == DropNewest:
			s.stats.dropped.Add(1)
			e.topic.stats.dropped.Add(1)
			s.mu.Unlock()
			return
		case s.cfg.policy == DropOldest:
			s.q[s.qh] = nil
			s.qh++
			s.stats.dropped.Add(1)
			e.topic.stats.dropped.Add(1)
		case s.cfg.policy == Disconnect:
			s.mu.Unlock()
			s.end(ErrSlowConsumer) // logged by detach, outside the publisher's locks
			return
		}
		// Block: the publisher waited for room; a concurrent one may take
		// it first, so the queue holds at most one extra per publisher.
	}
	if s.qh > 0 && s.qh >= len(s.q)/2 {
		n := copy(s.q, s.q[s.qh:])
		clear(s.q[n:])
		s.q, s.qh = s.q[:n], 0
	}
	s.q = append(s.q, e)
	s.qlen.Store(int32(len(s.q) - s.qh))
	if s.waiting > 0 {
		s.cond.Signal()
	}
	s.mu.Unlock()
}

// maxBatch bounds how many messages a worker takes from the queue at once.
const maxBatch = 64

// next fills batch with the next messages to handle, waiting for at least
// one; it returns nil when the subscription ends. With several workers
// each takes a share, so they all have work.
func (s *Subscription) next(batch []*entry) []*entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.ending {
			return nil
		}
		if len(s.backlog) > 0 {
			e := s.backlog[0]
			s.backlog[0] = nil
			s.backlog = s.backlog[1:]
			if s.skip(e) {
				continue
			}
			s.inFlight.Add(1)
			return append(batch, e)
		}
		if s.cursor < s.liveStart {
			if !s.loading {
				s.load()
			} else {
				s.wait()
			}
			continue
		}
		if n := len(s.q) - s.qh; n > 0 {
			take := min(n, maxBatch)
			if w := s.cfg.maxInFlight; w > 1 {
				take = min(take, (n+w-1)/w)
			}
			for _, e := range s.q[s.qh : s.qh+take] {
				if e.seq != 0 && e.seq < s.skipBelow || s.skip(e) {
					continue
				}
				batch = append(batch, e)
			}
			clear(s.q[s.qh : s.qh+take])
			s.qh += take
			s.qlen.Store(int32(len(s.q) - s.qh))
			// Wake blocked publishers once a quarter of the queue is free,
			// not at every free slot: they then publish in a burst.
			if s.room != nil && len(s.q)-s.qh <= s.cfg.queueSize-max(s.cfg.queueSize/4, 1) {
				close(s.room)
				s.room = nil
			}
			if len(batch) > 0 {
				s.inFlight.Add(int32(len(batch)))
				return batch
			}
			continue
		}
		s.wait()
	}
}

func (s *Subscription) wait() {
	s.waiting++
	s.cond.Wait()
	s.waiting--
}

// skip reports whether a durable consumer already acknowledged e.
func (s *Subscription) skip(e *entry) bool {
	if s.durable == nil {
		return false
	}
	if e.seq <= s.durable.floor {
		return true
	}
	_, acked := s.durable.acked[e.seq]
	return acked
}

// load reads the next batch of history into the backlog. Caller holds mu;
// load releases it while reading.
func (s *Subscription) load() {
	s.loading = true
	from, limit := s.cursor, int(min(s.liveStart-s.cursor, 256))
	s.mu.Unlock()
	es, err := s.ts.read(s.ctx, from, limit)
	s.mu.Lock()
	s.loading = false
	s.cond.Broadcast()
	switch {
	case err != nil && s.ctx.Err() == nil:
		s.mu.Unlock()
		s.b.log.Error("bus: subscription lost its place in history", "topic", s.ts.name, "seq", from, "err", err)
		s.end(err)
		s.mu.Lock()
	case len(es) == 0 && err == nil:
		s.mu.Unlock()
		s.end(fmt.Errorf("%w: topic %q seq %d", ErrNotCovered, s.ts.name, from))
		s.mu.Lock()
	default:
		s.backlog = append(s.backlog, es...)
		if len(es) > 0 {
			s.cursor = es[len(es)-1].seq + 1
		}
	}
}
