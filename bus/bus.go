package bus

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
)

// Bus is an event bus inside the host program: typed topics, rooms and
// ack-tracked delivery. Make one with [New]; it is safe for concurrent use.
type Bus struct {
	cfg  busConfig
	log  *slog.Logger
	base time.Time // the bus's clock: message times are offsets from it

	clockLast  atomic.Int64 // the last clock reading, in bus time
	clockFresh atomic.Bool  // clockLast is less than a clockGrain old
	clockTimer *time.Timer  // marks clockLast stale
	store      Store        // durable positions; topic logs too when persist is set
	persist    bool
	node       string // the broker's name for this bus (GroupBroker)

	ctx       context.Context // ends at Close: parent of every handler context
	cancel    context.CancelFunc
	wg        owned // the bus's goroutines: subscription workers, request handlers
	closing   atomic.Bool
	appending atomic.Int64 // publishes to persisted topics under way
	closeOnce sync.Once
	errMu     sync.Mutex
	closeErrs []error // met while closing, returned by the first Close
	ownStore  *MemoryStore

	mu        sync.RWMutex // guards topics, subs, trie, gen, durables, endpoints
	topics    map[string]*topicState
	trie      trie
	subs      map[*Subscription]struct{}
	gen       atomic.Uint64 // bumped on every subscription change
	durables  map[[2]string]*Subscription
	endpoints map[string]*endpointSet

	roomMu     sync.RWMutex
	rooms      map[string]*room
	members    map[string]*Member
	remote     map[string]map[string]struct{} // room -> members of other buses (with a broker)
	remoteInfo map[string]string              // member of another bus -> its info
	groups     groupView                      // queue groups of every bus (with a broker)
}

// New returns a running bus. With no options it keeps everything in memory:
// each topic has a history ring of 1024 messages and durable consumer
// positions live in a [MemoryStore].
func New(opts ...Option) (*Bus, error) {
	cfg := busConfig{
		dedupe:       2 * time.Minute,
		topic:        topicConfig{historyLen: 1024, codec: JSON},
		shutdownTick: 5 * time.Millisecond,
	}
	for _, o := range opts {
		o.applyBus(&cfg)
	}
	if cfg.topic.historyLen < 1 || cfg.topic.historyAge < 0 || cfg.dedupe < 0 || cfg.maxTopics < 0 {
		return nil, fmt.Errorf("%w: history length must be at least 1; ages, windows and MaxTopics not negative", ErrInvalidOption)
	}
	b := &Bus{
		cfg:       cfg,
		log:       cfg.logger,
		topics:    make(map[string]*topicState),
		subs:      make(map[*Subscription]struct{}),
		durables:  make(map[[2]string]*Subscription),
		endpoints: make(map[string]*endpointSet),
		rooms:     make(map[string]*room),
		members:   make(map[string]*Member),
	}
	b.wg.cond.L = &b.wg.mu
	b.base = time.Now()
	b.clockTimer = time.AfterFunc(time.Hour, func() { b.clockFresh.Store(false) })
	b.clockTimer.Stop()
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if gb, ok := cfg.broker.(GroupBroker); ok {
		b.node = gb.Name() // read once: ownsGroup runs under a topic's lock
	}
	if cfg.broker != nil {
		b.store, b.persist = cfg.broker, true
		b.remote = make(map[string]map[string]struct{})
		b.remoteInfo = make(map[string]string)
	} else if cfg.store != nil {
		b.store, b.persist = cfg.store, true
	} else {
		b.ownStore = NewMemoryStore()
		b.store = b.ownStore
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if cfg.broker != nil {
		if err := cfg.broker.Attach(feed{b}); err != nil {
			b.cancel()
			return nil, fmt.Errorf("bus: attach broker: %w", err)
		}
	}
	return b, nil
}

// Done returns a channel that is closed when the bus begins to close.
func (b *Bus) Done() <-chan struct{} { return b.ctx.Done() }

func (b *Bus) closed() bool { return b.closing.Load() }

// now returns the time as the bus keeps it: nanoseconds since it started,
// on the monotonic clock, to within clockGrain. Reading the clock costs as
// much as a whole channel hand-off on some machines, so while publishes
// come fast the bus reads it once per grain: the first reader after the
// grain has passed reads the clock and arms a timer that marks the reading
// stale one grain later. An idle bus arms no timer.
func (b *Bus) now() int64 {
	if b.clockFresh.Load() {
		return b.clockLast.Load()
	}
	t := int64(time.Since(b.base))
	for {
		last := b.clockLast.Load()
		if t <= last {
			t = last // never go back: a concurrent reader stored a later time
			break
		}
		if b.clockLast.CompareAndSwap(last, t) {
			break
		}
	}
	if b.clockFresh.CompareAndSwap(false, true) {
		b.clockTimer.Reset(clockGrain)
	}
	return t
}

// clockGrain is the resolution of message times.
const clockGrain = 500 * time.Microsecond

// wall turns a bus time into a wall-clock time.
func (b *Bus) wall(at int64) time.Time { return b.base.Add(time.Duration(at)) }

// at turns a wall-clock time into a bus time.
func (b *Bus) at(t time.Time) int64 { return int64(t.Sub(b.base)) }

// binding ties a topic name to a Go type.
type binding struct {
	typ       reflect.Type
	codec     Codec
	fromBytes func(ts *topicState, data []byte) (*entry, error)
}

// topic returns the state of name, creating it. bind, if not nil, binds the
// topic's type; cfg is used only when the topic is created.
func (b *Bus) topic(ctx context.Context, name string, tcfg *topicConfig, bind *binding) (*topicState, error) {
	b.mu.RLock()
	ts := b.topics[name]
	b.mu.RUnlock()
	if ts == nil {
		cfg := b.cfg.topic
		if tcfg != nil {
			cfg = *tcfg
		}
		var err error
		ts, err = b.createTopic(ctx, name, cfg)
		if err != nil {
			return nil, err
		}
	}
	if bind != nil {
		if err := ts.bindType(bind); err != nil {
			return nil, err
		}
	}
	return ts, nil
}

// roomForTopic reports ErrTooManyTopics when the bus holds MaxTopics
// topics and name is not one of them.
func (b *Bus) roomForTopic(name string) error {
	if b.cfg.maxTopics <= 0 {
		return nil
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.roomForTopicLocked(name)
}

func (b *Bus) roomForTopicLocked(name string) error {
	if b.cfg.maxTopics > 0 && len(b.topics) >= b.cfg.maxTopics && b.topics[name] == nil {
		return fmt.Errorf("%w: %d, creating %q", ErrTooManyTopics, b.cfg.maxTopics, name)
	}
	return nil
}

func (b *Bus) createTopic(ctx context.Context, name string, cfg topicConfig) (*topicState, error) {
	return b.openTopic(ctx, name, cfg, 0, 0)
}

// openTopic makes the state of topic name. fed, when not 0, is the
// sequence number of a record the broker hands for a topic this bus has
// not seen: the topic starts just before it, whatever the log held before
// (that is history, read from the broker when asked for), and MaxTopics
// does not apply, since the broker's records must be delivered. epoch, when
// not 0, is the epoch that record starts (see Record.Epoch).
func (b *Bus) openTopic(ctx context.Context, name string, cfg topicConfig, fed, epoch uint64) (*topicState, error) {
	if fed == 0 {
		if err := b.roomForTopic(name); err != nil {
			return nil, err
		}
	}
	persisted := b.persist && !cfg.ephemeral && !reserved(name) || b.persist && isDeadLetter(name)
	var st TopicState
	if persisted {
		var err error
		if st, err = b.store.Topic(ctx, name); err != nil {
			return nil, fmt.Errorf("bus: open topic %q: %w", name, err)
		}
		if fed != 0 {
			st.Last = fed - 1
			st.First = min(st.First, fed)
		}
		if epoch != 0 {
			st.Epoch = epoch
		}
	} else {
		st.Epoch = newEpoch()
	}
	// The publisher ids of the de-duplication window are read before the
	// bus's lock is taken: the topic is not in the bus yet, so nothing can
	// publish to it meanwhile. A broker de-duplicates across buses itself.
	var dd dedupeWindow
	if persisted && b.cfg.dedupe > 0 && b.cfg.broker == nil {
		var err error
		if dd, err = b.loadDedupe(ctx, name, st.Last); err != nil {
			return nil, err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed() {
		return nil, ErrClosed
	}
	if ts := b.topics[name]; ts != nil {
		return ts, nil
	}
	if fed == 0 {
		if err := b.roomForTopicLocked(name); err != nil {
			return nil, err
		}
	}
	ts := newTopicState(b, name, cfg, st, persisted)
	if dd.ids != nil {
		ts.dedupe, ts.dedupeQ = dd.ids, dd.queue
	}
	b.topics[name] = ts
	return ts, nil
}

// matches returns the current match set of ts, recomputing it when a
// subscription changed since it was cached.
func (b *Bus) matches(ts *topicState) *matchSet {
	gen := b.gen.Load()
	if ms := ts.match.Load(); ms != nil && ms.gen == gen {
		return ms
	}
	b.mu.RLock()
	gen = b.gen.Load()
	subs := b.trie.match(ts.name, nil)
	b.mu.RUnlock()
	ms := newMatchSet(gen, subs)
	ts.match.Store(ms)
	return ms
}
