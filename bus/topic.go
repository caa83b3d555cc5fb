package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
)

// Topic is a topic name bound to a Go type T. Make one with [NewTopic]; it is
// safe for concurrent use.
type Topic[T any] struct {
	b  *Bus
	ts *topicState

	slabMu sync.Mutex
	slab   []valueEntry[T] // entries not handed out yet
}

// slabSize is how many entries one allocation makes for a topic's
// publishes: the cost of an allocation, the bulk of a publish's, is shared
// by that many messages. A message kept alive keeps its slab alive (a few
// KiB) until none of them is referenced.
const slabSize = 32

// entry returns a fresh entry holding v, from the slab.
func (t *Topic[T]) entry(v T) *entry {
	t.slabMu.Lock()
	if len(t.slab) == 0 {
		t.slab = make([]valueEntry[T], slabSize)
	}
	te := &t.slab[0]
	t.slab = t.slab[1:]
	t.slabMu.Unlock()
	te.v = v
	te.entry.topic = t.ts
	te.entry.epoch = t.ts.epoch.Load()
	te.entry.val = te
	return &te.entry
}

// NewTopic binds name to T and returns the typed topic. Binding a name again
// to the same T returns a topic for the same stream; binding it to another
// type is [ErrTypeMismatch]. Options apply when the topic is first used.
// Names starting with '$' belong to the bus ([ErrInvalidTopic]). With a
// [Store] or [Broker], making the topic reads its state there; [Context]
// bounds that.
func NewTopic[T any](b *Bus, name string, opts ...TopicOption) (*Topic[T], error) {
	if err := ValidateTopic(name); err != nil {
		return nil, err
	}
	if reserved(name) {
		return nil, fmt.Errorf("%w: %q is reserved for the bus", ErrInvalidTopic, name)
	}
	return newTopic[T](b, name, opts)
}

func newTopic[T any](b *Bus, name string, opts []TopicOption) (*Topic[T], error) {
	if b.closed() {
		return nil, ErrClosed
	}
	cfg := b.cfg.topic
	for _, o := range opts {
		o.applyTopic(&cfg)
	}
	for _, o := range opts {
		if c, ok := o.(ctxOpt); ok && c.ctx == nil {
			return nil, fmt.Errorf("%w: topic %q: nil Context", ErrInvalidOption, name)
		}
	}
	if cfg.historyLen < 1 || cfg.historyAge < 0 || cfg.codec == nil {
		return nil, fmt.Errorf("%w: topic %q: history length must be at least 1 and codec set", ErrInvalidOption, name)
	}
	bind := &binding{
		typ:   reflect.TypeFor[T](),
		codec: cfg.codec,
		fromBytes: func(ts *topicState, data []byte) (*entry, error) {
			var v T
			if err := ts.codecOf().Decode(data, &v); err != nil {
				return nil, fmt.Errorf("%w: topic %q: %v", ErrTypeMismatch, ts.name, err)
			}
			e := newEntry(ts, v)
			e.setBytes(data)
			return e, nil
		},
	}
	ts, err := b.topic(callCtx(cfg.ctx), name, &cfg, bind)
	if err != nil {
		return nil, err
	}
	return &Topic[T]{b: b, ts: ts}, nil
}

// publishOne publishes v on one of the bus's own topics (room events, dead
// letters): a single message, so it takes no slab of 32 from a Topic.
func publishOne[T any](ctx context.Context, b *Bus, name string, v T, opts ...TopicOption) error {
	t, err := newTopic[T](b, name, opts)
	if err != nil {
		return err
	}
	_, err = t.ts.publish(ctx, newEntry(t.ts, v), &publishConfig{})
	return err
}

// Name returns the topic's name.
func (t *Topic[T]) Name() string { return t.ts.name }

// Epoch returns the epoch of the topic's history (see [Position]).
func (t *Topic[T]) Epoch() uint64 { return t.ts.epoch.Load() }

// Publish publishes v and returns its sequence number, once the message is
// in the topic's history (committed to the Store, for a persisted topic) and
// queued for every matching subscription. It waits, within ctx, for
// subscriptions with the Block policy to have room; if ctx ends first
// nothing is published and ctx.Err() is returned. A [Volatile] publish
// returns 0. With a [Broker], a publish made from a handler of this bus
// returns once the broker has stored the message, without waiting for it
// to be queued here.
//
// The bus keeps v itself, not a copy: the history, [Topic.Read] and every
// in-process subscriber get the same value. A value that holds references
// (a []byte or other slice, a map, a pointer) therefore shares its memory
// with them: do not change it after Publish, and publish a copy of a buffer
// that is reused.
func (t *Topic[T]) Publish(ctx context.Context, v T, opts ...PublishOption) (uint64, error) {
	if t.b.closed() {
		return 0, ErrClosed
	}
	var pc publishConfig
	for _, o := range opts {
		pc = o.applyPublish(pc)
	}
	return t.ts.publish(ctx, t.entry(v), &pc)
}

// Subscribe calls h for every message published to the topic from now on
// (see [StartFirst] and the other [Start] options for history). With no
// options the delivery is at-least-once and ordered: h returning nil
// acknowledges, an error or a panic means redelivery after a backoff, and
// after MaxDeliver attempts the message goes to the dead-letter topic
// "$dead.<topic>". See the SubscribeOption functions for the rest;
// [Context] bounds the store and broker calls Subscribe may make.
func (t *Topic[T]) Subscribe(h func(ctx context.Context, m Message[T]) error, opts ...SubscribeOption) (*Subscription, error) {
	deliver := func(ctx context.Context, e *entry, attempt int, d *delivery) error {
		v, err := valueOf[T](e)
		if err != nil {
			return err
		}
		return h(ctx, Message[T]{Value: v, e: e, attempt: attempt, d: d})
	}
	return t.b.subscribe(t.ts.name, t.ts, deliver, opts)
}

// Read returns up to limit messages of the topic's history from sequence
// number from on, in order, or [ErrNotCovered] when the history no longer
// holds from.
func (t *Topic[T]) Read(ctx context.Context, from uint64, limit int) ([]Message[T], error) {
	es, err := t.ts.read(ctx, from, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Message[T], 0, len(es))
	for _, e := range es {
		v, err := valueOf[T](e)
		if err != nil {
			return out, err
		}
		out = append(out, Message[T]{Value: v, e: e, attempt: 1})
	}
	return out, nil
}

// ReadAfter is Read from a stream position: the messages after p, or
// [ErrNotCovered] when p's epoch is not the topic's or the history no longer
// reaches back to it.
func (t *Topic[T]) ReadAfter(ctx context.Context, p Position, limit int) ([]Message[T], error) {
	if ep := t.ts.epoch.Load(); p.Epoch != ep {
		return nil, fmt.Errorf("%w: topic %q: epoch %d, history is epoch %d", ErrNotCovered, t.ts.name, p.Epoch, ep)
	}
	if err := t.ts.checkAhead(ctx, p); err != nil {
		return nil, err
	}
	return t.Read(ctx, p.Seq+1, limit)
}

// topicState is one topic's stream: its sequence, history and subscribers.
type topicState struct {
	b         *Bus
	name      string
	epoch     atomic.Uint64 // changed only under pubMu, by a broker's new epoch
	codec     Codec
	persisted bool
	bind      atomic.Pointer[binding]

	pubMu     sync.Mutex // orders publishes; guards the fields below and hist
	last      uint64     // last sequence dispatched
	published uint64
	pending   map[uint64]*entry // persisted: committed, waiting for order
	dedupe    map[string]*dedupeRec
	dedupeQ   []*dedupeRec // in publish order, for expiry
	waiters   []seqWaiter  // publishes waiting for the broker to hand their record back

	hist  ring
	match atomic.Pointer[matchSet]
	stats topicCounters
}

func newTopicState(b *Bus, name string, cfg topicConfig, st TopicState, persisted bool) *topicState {
	ts := &topicState{
		b:         b,
		name:      name,
		codec:     cfg.codec,
		persisted: persisted,
		last:      st.Last,
		dedupe:    make(map[string]*dedupeRec),
	}
	ts.epoch.Store(st.Epoch)
	ts.hist.init(cfg.historyLen, cfg.historyAge, st.Last+1)
	return ts
}

// codecOf returns the codec of the topic's bound type, or the one it was
// created with.
func (ts *topicState) codecOf() Codec {
	if bd := ts.bind.Load(); bd != nil {
		return bd.codec
	}
	return ts.codec
}

func isDeadLetter(name string) bool { return strings.HasPrefix(name, deadPrefix) }

func (ts *topicState) bindType(bd *binding) error {
	for {
		cur := ts.bind.Load()
		if cur != nil {
			if cur.typ != bd.typ {
				return fmt.Errorf("%w: topic %q is bound to %v, not %v", ErrTypeMismatch, ts.name, cur.typ, bd.typ)
			}
			return nil
		}
		if ts.bind.CompareAndSwap(nil, bd) {
			return nil
		}
	}
}

// rawEntry makes an entry from encoded bytes: decoded into the bound type,
// or kept as json.RawMessage when the topic has none.
func (ts *topicState) rawEntry(data []byte) (*entry, error) {
	if bd := ts.bind.Load(); bd != nil {
		return bd.fromBytes(ts, data)
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("%w: topic %q: value is not JSON", ErrTypeMismatch, ts.name)
	}
	e := newEntry(ts, json.RawMessage(data))
	e.setBytes(data)
	return e, nil
}

func (ts *topicState) publish(ctx context.Context, e *entry, pc *publishConfig) (uint64, error) {
	if pc.meta != nil && !pc.meta.empty() {
		e.meta = pc.meta
	}
	if pc.volatile {
		if err := ts.waitRoom(ctx, true); err != nil {
			return 0, err
		}
		if err := ts.shareVolatile(ctx, e); err != nil {
			return 0, err
		}
		e.at = ts.b.now()
		ts.pubMu.Lock()
		ts.published++
		ts.dispatch(e, true)
		ts.pubMu.Unlock()
		return 0, nil
	}
	if err := ts.waitRoom(ctx, false); err != nil {
		return 0, err
	}
	var rec *dedupeRec
	if id := e.m().publisherID; id != "" && ts.b.cfg.dedupe > 0 {
		seq, r, err := ts.claim(ctx, id)
		if err != nil || r == nil {
			return seq, err
		}
		rec = r
	}
	if ts.persisted {
		return ts.publishPersisted(ctx, e, rec)
	}
	// Read the clock before taking the lock, to keep the lock short; two
	// concurrent publishes may get times a few nanoseconds out of order.
	e.at = ts.b.now()
	ts.pubMu.Lock()
	if ts.b.closed() {
		ts.pubMu.Unlock()
		ts.release(rec, 0)
		return 0, ErrClosed
	}
	ts.last++
	e.seq = ts.last
	ts.published++
	ts.hist.push(e)
	ts.dispatch(e, false)
	ts.pubMu.Unlock()
	ts.release(rec, e.seq)
	return e.seq, nil
}

func (ts *topicState) publishPersisted(ctx context.Context, e *entry, rec *dedupeRec) (uint64, error) {
	// Counted before the check, so that Shutdown, which sets closing and
	// then waits for the count to fall to 0, sees this publish or this
	// publish sees it.
	b := ts.b
	b.appending.Add(1)
	defer b.appending.Add(-1)
	if b.closed() {
		ts.release(rec, 0)
		return 0, ErrClosed
	}
	data, err := e.bytes()
	if err != nil {
		ts.release(rec, 0)
		return 0, fmt.Errorf("bus: encode %q: %w", ts.name, err)
	}
	e.at = ts.b.now()
	md := e.m()
	r := Record{
		Time: ts.b.wall(e.at), PublisherID: md.publisherID, Headers: md.headers,
		To: md.to, Except: md.except, ExceptMember: md.exceptMember, Data: data,
	}
	var seq, epoch uint64
	if ea, ok := ts.b.store.(EpochAppender); ok {
		seq, epoch, err = ea.AppendEpoch(ctx, ts.name, r)
	} else {
		seq, err = ts.b.store.Append(ctx, ts.name, r)
	}
	if err != nil {
		ts.release(rec, 0)
		return 0, fmt.Errorf("bus: publish %q: %w", ts.name, err)
	}
	if ts.b.cfg.broker != nil {
		// The broker hands every record back through the feed, in order
		// with the other buses' records: that is where it is dispatched.
		ts.awaitApplied(ctx, seq, epoch)
		ts.release(rec, seq)
		return seq, nil
	}
	e.seq = seq
	ts.pubMu.Lock()
	if ts.pending == nil {
		ts.pending = make(map[uint64]*entry)
	}
	ts.pending[seq] = e
	// Dispatch in sequence order: a publish committed in the same batch as
	// an earlier one may get here first.
	for {
		p := ts.pending[ts.last+1]
		if p == nil {
			break
		}
		delete(ts.pending, ts.last+1)
		ts.last++
		ts.published++
		ts.hist.push(p)
		ts.dispatch(p, false)
	}
	ts.pubMu.Unlock()
	ts.release(rec, seq)
	return seq, nil
}

// waitRoom waits until every Block subscription matching the topic has room
// in its queue; for a volatile publish, only the volatile subscriptions that
// asked for Block.
func (ts *topicState) waitRoom(ctx context.Context, volatile bool) error {
	ms := ts.b.matches(ts)
	block := ms.block
	if volatile {
		block = ms.vblock
	}
	for _, s := range block {
		if s.full() {
			if err := s.waitRoom(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// dispatch queues e for every subscription it reaches. Caller holds pubMu.
func (ts *topicState) dispatch(e *entry, volatile bool) {
	ms := ts.b.matches(ts)
	md := e.m()
	for _, s := range ms.unfiltered {
		s.enqueue(e, volatile)
	}
	switch {
	case len(md.to) > 0:
		ts.dispatchRooms(ms, e, md, volatile)
	case md.except == nil && md.exceptMember == "":
		for _, s := range ms.plain {
			s.enqueue(e, volatile)
		}
	default:
		for _, s := range ms.plain {
			if reaches(md, s.cfg.owner) {
				s.enqueue(e, volatile)
			}
		}
	}
	for _, g := range ms.groups {
		if ts.b.cfg.broker != nil && (ts.persisted || volatile && !reserved(ts.name)) && !ts.b.ownsGroup(g.name, ts.name, e.seq) {
			continue
		}
		if s := g.pick(md); s != nil {
			s.enqueue(e, volatile)
		}
	}
}

// dispatchRooms queues e for the subscriptions of the members of md.to,
// once per subscription.
func (ts *topicState) dispatchRooms(ms *matchSet, e *entry, md *meta, volatile bool) {
	var seen map[*Member]struct{}
	if len(md.to) > 1 {
		seen = make(map[*Member]struct{})
	}
	for _, name := range md.to {
		for _, m := range ts.b.roomMembers(name) {
			subs := ms.byOwner[m]
			if len(subs) == 0 {
				continue
			}
			if seen != nil {
				if _, dup := seen[m]; dup {
					continue
				}
				seen[m] = struct{}{}
			}
			if !m.accepts(md) {
				continue
			}
			for _, s := range subs {
				s.enqueue(e, volatile)
			}
		}
	}
}

// read returns history entries from seq from on.
func (ts *topicState) read(ctx context.Context, from uint64, limit int) ([]*entry, error) {
	if from == 0 {
		from = 1
	}
	ts.pubMu.Lock()
	es, ok := ts.hist.read(ts.b.now(), from, limit, nil)
	ts.pubMu.Unlock()
	if ok || !ts.persisted {
		if !ok {
			return nil, fmt.Errorf("%w: topic %q seq %d", ErrNotCovered, ts.name, from)
		}
		return es, nil
	}
	recs, err := ts.b.store.Read(ctx, ts.name, from, limit, nil)
	if err != nil {
		return nil, fmt.Errorf("bus: read %q from %d: %w", ts.name, from, err)
	}
	es = make([]*entry, 0, len(recs))
	for i := range recs {
		e, err := ts.recordEntry(&recs[i])
		if err != nil {
			return es, err
		}
		es = append(es, e)
	}
	return es, nil
}

// matchSet is the cached answer to "who subscribes to this topic".
type matchSet struct {
	gen        uint64
	plain      []*Subscription             // not in a queue group, filtered by rooms
	unfiltered []*Subscription             // not in a queue group, every message
	byOwner    map[*Member][]*Subscription // plain ones with an owner
	groups     []*group
	block      []*Subscription // plain ones with the Block policy
	vblock     []*Subscription // the volatile ones among them
}

type group struct {
	name string
	subs []*Subscription
	next atomic.Uint32
}

func newMatchSet(gen uint64, subs []*Subscription) *matchSet {
	ms := &matchSet{gen: gen}
	var byName map[string]*group
	for _, s := range subs {
		switch {
		case s.cfg.group != "":
			if byName == nil {
				byName = make(map[string]*group)
			}
			g := byName[s.cfg.group]
			if g == nil {
				g = &group{name: s.cfg.group}
				byName[s.cfg.group] = g
				ms.groups = append(ms.groups, g)
			}
			g.subs = append(g.subs, s)
			continue
		case s.cfg.unfiltered:
			ms.unfiltered = append(ms.unfiltered, s)
		default:
			ms.plain = append(ms.plain, s)
			if s.cfg.owner != nil {
				if ms.byOwner == nil {
					ms.byOwner = make(map[*Member][]*Subscription)
				}
				ms.byOwner[s.cfg.owner] = append(ms.byOwner[s.cfg.owner], s)
			}
		}
		if s.cfg.policy == Block {
			ms.block = append(ms.block, s)
			if s.cfg.volatile {
				ms.vblock = append(ms.vblock, s)
			}
		}
	}
	return ms
}

// pick chooses the group member for one message: round robin over the
// members the message may reach, preferring one with room in its queue.
func (g *group) pick(md *meta) *Subscription {
	n := uint32(len(g.subs))
	start := g.next.Add(1)
	var fallback *Subscription
	for i := range n {
		s := g.subs[(start+i)%n]
		if !s.cfg.unfiltered && !reaches(md, s.cfg.owner) {
			continue
		}
		if !s.full() {
			return s
		}
		if fallback == nil {
			fallback = s
		}
	}
	return fallback
}
