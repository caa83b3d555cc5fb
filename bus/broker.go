package bus

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Broker lets several buses, in several processes, share their topics: a
// publish on any of them reaches the matching subscriptions of all of them,
// once, and a topic's positions mean the same everywhere. A bus given one
// with [WithBroker] keeps its topics' logs in it (it is the bus's [Store])
// and receives every bus's messages from it through a [Feed]. Package
// cluster implements one on NATS. A bus without a broker pays nothing for
// this seam.
//
// Beyond the Store contract, Append must give sequence numbers that are
// the same on every bus sharing the broker (one shared log per topic), and
// the broker must hand every appended record, its own bus's included, to
// every attached Feed.
//
// A broker whose shared history can go back (a cluster whose servers lost
// acknowledged records) must never give a position (epoch, seq) twice: the
// topic's next record then starts a new epoch, numbered after the last
// record the history still holds, and is handed to every Feed with
// [Record.Epoch] set. A bus takes the new epoch from that record on; the
// records the history still holds keep their numbers, now under the new
// epoch, and positions of the old one are [ErrNotCovered].
//
// bustest.TestBroker, in package bus/bustest, checks a broker against this
// contract; bustest.Hub is the reference, in memory.
type Broker interface {
	Store
	// Attach starts handing the records appended by every bus to f: for
	// each topic in sequence order, without gaps once a topic has been
	// handed one record. The bus calls it once, from New.
	Attach(f Feed) error
}

// Feed receives what a [Broker] shares with a bus. Its methods are safe for
// concurrent use, but the records of one topic must come in order, from one
// goroutine at a time.
type Feed interface {
	// Record delivers one record of topic's shared log to the bus's
	// subscriptions, as a publish on this bus would have.
	Record(topic string, r Record)
	// Volatile delivers an at-most-once message published on another bus.
	Volatile(topic string, r Record)
	// Group records, in order with the records, that the bus named node
	// has (joined) or no longer has subscriptions in queue group on
	// pattern. A message of a topic goes to the group's members on one
	// bus only: the same one on every bus, chosen among the buses
	// registered at that point of the log. group "" with joined false
	// forgets every registration of node.
	Group(node, group, pattern string, joined bool)
	// Presence records that member, a member of another bus, joined or left
	// room, and publishes the [RoomEvent] on this bus. info is the member's
	// [Member.SetInfo] on its bus.
	Presence(room, member, info string, joined bool)
}

// A Broker may also implement these; a bus uses what its broker offers.
type (
	// VolatileBroker carries at-most-once publishes to the other buses.
	VolatileBroker interface {
		PublishVolatile(ctx context.Context, topic string, r Record) error
	}
	// PresenceBroker makes rooms cluster-wide: it tells the other buses
	// when a member of this bus joins or leaves a room, with the member's
	// info ([Member.SetInfo]).
	PresenceBroker interface {
		SharePresence(ctx context.Context, room, member, info string, joined bool) error
	}
	// GroupBroker makes queue groups cluster-wide: each message reaches
	// one member of a group across the buses. Name is this bus's name in
	// the Group calls of the Feed.
	GroupBroker interface {
		Name() string
		ShareGroup(ctx context.Context, group, pattern string, joined bool) error
	}
	// RequestBroker carries requests to endpoints served on other buses.
	// Serve offers this bus's handlers of name to the others until stop is
	// called; Request asks one of the buses serving name and returns its
	// encoded reply, an error wrapping [ErrNoHandler] when none does, or
	// the handler's error.
	// HistoryChecker lets the bus ask whether a position a client or a
	// durable consumer presents, of the topic's epoch and past the end of
	// what this bus has applied, names a record the shared history no
	// longer holds: a number that was given and is gone, because the
	// history went back. Lost is then true, the bus answers
	// [ErrNotCovered], and the broker must give the topic a new epoch
	// before it gives that number again. Lost is false for a position the
	// history holds (this bus is behind) or past every number given.
	HistoryChecker interface {
		Lost(ctx context.Context, topic string, p Position) (bool, error)
	}
	// EpochAppender is Append that also returns the epoch the record was
	// given under, for a broker whose topics' epochs can change: a publish
	// then returns once its bus has that epoch, so that the position it
	// reports is the record's.
	EpochAppender interface {
		AppendEpoch(ctx context.Context, topic string, r Record) (seq, epoch uint64, err error)
	}
	RequestBroker interface {
		Serve(name string, h func(ctx context.Context, data []byte) ([]byte, error)) (stop func(), err error)
		Request(ctx context.Context, name string, data []byte) ([]byte, error)
	}
)

type brokerOpt struct{ br Broker }

func (o brokerOpt) applyBus(c *busConfig) { c.broker = o.br }

// WithBroker shares the bus's topics, rooms and endpoints with the other
// buses attached to br (see [Broker]). br is also the bus's [Store]: the
// topics' logs and durable consumers' positions live in it, so it replaces
// [WithStore]. The bus does not close br.
func WithBroker(br Broker) Option { return brokerOpt{br} }

// feed is the bus's side of its broker.
type feed struct{ b *Bus }

func (f feed) Record(topic string, r Record) {
	b := f.b
	if b.ctx.Err() != nil {
		return
	}
	ts, err := b.feedTopic(topic, r.Seq, r.Epoch)
	if err != nil {
		b.log.Error("bus: broker record for an unusable topic", "topic", topic, "err", err)
		return
	}
	if !ts.persisted {
		return // made Ephemeral here: this node keeps it to itself
	}
	// Back-pressure as for a local publish: the feed waits for room in the
	// queues of Block subscriptions, which holds back the broker.
	if err := ts.waitRoom(b.ctx, false); err != nil {
		return // the bus is closing
	}
	e, err := ts.recordEntry(&r)
	if err != nil {
		b.log.Error("bus: broker record does not decode", "topic", topic, "seq", r.Seq, "err", err)
		// Keep the sequence without a gap: deliver the bytes as they are.
		e = newEntry(ts, r.Data)
		e.setBytes(r.Data)
		e.seq, e.at = r.Seq, b.at(r.Time)
	}
	ts.apply(e, r.Epoch)
}

func (f feed) Volatile(topic string, r Record) {
	b := f.b
	if b.ctx.Err() != nil {
		return
	}
	ts, err := b.topic(context.Background(), topic, nil, nil)
	if err != nil {
		return
	}
	e, err := ts.recordEntry(&r)
	if err != nil {
		b.log.Error("bus: volatile broker message does not decode", "topic", topic, "err", err)
		return
	}
	e.at = b.now()
	ts.pubMu.Lock()
	ts.published++
	ts.dispatch(e, true)
	ts.pubMu.Unlock()
}

func (f feed) Presence(room, member, info string, joined bool) {
	b := f.b
	if validRoom(room) != nil || b.ctx.Err() != nil {
		return
	}
	b.roomMu.Lock()
	if !joined {
		info = b.remoteInfo[member]
	}
	set := b.remote[room]
	_, in := set[member]
	if in == joined {
		b.roomMu.Unlock()
		return
	}
	// A member of this bus with the same id (a session another node made,
	// taken over here) is in the room whatever the other bus says: no
	// event then.
	here := false
	if m := b.members[member]; m != nil {
		here = m.inAny([]string{room})
	}
	if joined {
		if set == nil {
			set = make(map[string]struct{})
			b.remote[room] = set
		}
		set[member] = struct{}{}
		b.remoteInfo[member] = info
	} else {
		delete(set, member)
		if len(set) == 0 {
			delete(b.remote, room)
		}
		if !b.remoteInAny(member) {
			delete(b.remoteInfo, member)
		}
	}
	b.roomMu.Unlock()
	if here {
		return
	}
	if err := publishOne(context.Background(), b, RoomTopic(room), RoomEvent{Room: room, Member: member, Joined: joined, Info: info}, Ephemeral()); err != nil && b.ctx.Err() == nil {
		b.log.Error("bus: room event", "room", room, "err", err)
	}
}

// remoteIn reports whether another bus has a member with this id in room.
func (b *Bus) remoteIn(room, member string) bool {
	if b.remote == nil {
		return false
	}
	b.roomMu.RLock()
	defer b.roomMu.RUnlock()
	_, ok := b.remote[room][member]
	return ok
}

// remoteInAny reports whether member is in a room of another bus. Caller
// holds roomMu.
func (b *Bus) remoteInAny(member string) bool {
	for _, set := range b.remote {
		if _, ok := set[member]; ok {
			return true
		}
	}
	return false
}

// remoteMembers returns the members of room on other buses. Caller holds
// roomMu.
func (b *Bus) remoteMembers(room string) []string {
	set := b.remote[room]
	out := make([]string, 0, len(set))
	for m := range set {
		out = append(out, m)
	}
	return out
}

// feedTopic returns the topic for a record from the broker (see openTopic).
func (b *Bus) feedTopic(name string, seq, epoch uint64) (*topicState, error) {
	b.mu.RLock()
	ts := b.topics[name]
	b.mu.RUnlock()
	if ts != nil {
		return ts, nil
	}
	return b.openTopic(b.ctx, name, b.cfg.topic, seq, epoch)
}

// recordEntry makes an entry from a record of the Store or the broker.
func (ts *topicState) recordEntry(r *Record) (*entry, error) {
	e, err := ts.rawEntry(r.Data)
	if err != nil {
		return nil, err
	}
	e.seq, e.at = r.Seq, ts.b.at(r.Time)
	if r.PublisherID != "" || r.Headers != nil || r.To != nil || r.Except != nil || r.ExceptMember != "" {
		e.meta = &meta{publisherID: r.PublisherID, headers: r.Headers, to: r.To, except: r.Except, exceptMember: r.ExceptMember}
	}
	return e, nil
}

// apply dispatches a record from the broker, in sequence order: one the
// topic already has is dropped. epoch, when not 0 and not the topic's,
// starts a new epoch at e (see Record.Epoch): what the bus held past e.seq-1
// was lost, and goes from its history.
func (ts *topicState) apply(e *entry, epoch uint64) {
	ts.pubMu.Lock()
	var stale []seqWaiter
	// Logged once the lock is released: a log handler is user code.
	wentBack, had := false, ts.last
	defer func() {
		if wentBack {
			ts.b.log.Warn("bus: the broker's history went back: new epoch", "topic", ts.name, "seq", e.seq, "had", had, "epoch", epoch)
		}
	}()
	if epoch != 0 && epoch != ts.epoch.Load() {
		wentBack = true
		ts.epoch.Store(epoch)
		ts.hist.reset(e.seq)
		ts.last = e.seq - 1
		// Publishes of the old epoch still waiting for their record will
		// not see it: it was lost.
		rest := ts.waiters[:0]
		for _, w := range ts.waiters {
			if w.epoch != 0 && w.epoch != epoch {
				stale = append(stale, w)
			} else {
				rest = append(rest, w)
			}
		}
		clear(ts.waiters[len(rest):])
		ts.waiters = rest
	}
	for _, w := range stale {
		close(w.done)
	}
	e.epoch = ts.epoch.Load()
	if e.seq <= ts.last {
		ts.pubMu.Unlock()
		return
	}
	var skipped uint64 // first seq skipped, logged once the lock is released
	if e.seq != ts.last+1 {
		// The broker promises no gaps; a topic made by this bus before the
		// broker handed it anything starts where the log was then.
		skipped = ts.last + 1
		ts.hist.reset(e.seq)
	}
	ts.last = e.seq
	ts.published++
	ts.hist.push(e)
	ts.dispatch(e, false)
	var done []seqWaiter
	if len(ts.waiters) > 0 {
		rest := ts.waiters[:0]
		for _, w := range ts.waiters {
			if w.seq <= e.seq && (w.epoch == 0 || w.epoch == e.epoch) {
				done = append(done, w)
			} else {
				rest = append(rest, w)
			}
		}
		clear(ts.waiters[len(rest):])
		ts.waiters = rest
	}
	ts.pubMu.Unlock()
	if skipped != 0 {
		ts.b.log.Warn("bus: broker skipped sequence numbers", "topic", ts.name, "from", skipped, "to", e.seq-1)
	}
	for _, w := range done {
		close(w.done)
	}
}

type seqWaiter struct {
	seq   uint64
	epoch uint64 // 0: any
	done  chan struct{}
}

func (ts *topicState) addWaiter(w seqWaiter) {
	ts.pubMu.Lock()
	if ts.last >= w.seq && (w.epoch == 0 || w.epoch == ts.epoch.Load()) {
		ts.pubMu.Unlock()
		close(w.done)
		return
	}
	ts.waiters = append(ts.waiters, w)
	ts.pubMu.Unlock()
}

// awaitApplied waits until the broker has handed this bus the record seq,
// so a publish returns once the message is in this bus's history and
// queued for its subscriptions, as without a broker. The record is in the
// shared log already: if ctx or the bus ends first, the publish still
// stands.
func (ts *topicState) awaitApplied(ctx context.Context, seq, epoch uint64) {
	if handlerSub(ctx) != nil {
		// A handler publishing: the feed may be waiting for room in its
		// subscription's queue, so waiting here could wait for ever.
		return
	}
	w := seqWaiter{seq: seq, epoch: epoch, done: make(chan struct{})}
	ts.addWaiter(w)
	select {
	case <-w.done:
	case <-ctx.Done():
	case <-ts.b.ctx.Done():
	}
}

// sharePresence tells the broker about a change of this bus's rooms.
func (b *Bus) sharePresence(ctx context.Context, room string, m *Member, joined bool) error {
	pb, ok := b.cfg.broker.(PresenceBroker)
	if !ok {
		return nil
	}
	member := m.id
	if err := pb.SharePresence(ctx, room, member, m.Info(), joined); err != nil {
		return fmt.Errorf("bus: share presence of %q in %q: %w", member, room, err)
	}
	return nil
}

// withRemote merges the members of room on other buses into local, a
// sorted list.
func (b *Bus) withRemote(room string, local []string) []string {
	if b.cfg.broker == nil {
		return local
	}
	b.roomMu.RLock()
	remote := b.remoteMembers(room)
	b.roomMu.RUnlock()
	if len(remote) == 0 {
		return local
	}
	out := append(local, remote...)
	slices.Sort(out)
	return slices.Compact(out)
}

// remoteServe offers a local endpoint to the other buses while it has
// handlers.
type remoteServe struct {
	mu    sync.Mutex
	busy  bool // serveRemote is talking to the broker
	again bool // and should look again when done
	stop  func()
}

// shareVolatile hands a volatile publish to the other buses.
func (ts *topicState) shareVolatile(ctx context.Context, e *entry) error {
	vb, ok := ts.b.cfg.broker.(VolatileBroker)
	if !ok || reserved(ts.name) {
		return nil
	}
	data, err := e.bytes()
	if err != nil {
		return fmt.Errorf("bus: encode %q: %w", ts.name, err)
	}
	md := e.m()
	r := Record{Time: time.Now(), PublisherID: md.publisherID, Headers: md.headers,
		To: md.to, Except: md.except, ExceptMember: md.exceptMember, Data: data}
	if err := vb.PublishVolatile(ctx, ts.name, r); err != nil {
		return fmt.Errorf("bus: publish %q: %w", ts.name, err)
	}
	return nil
}

// groupView is what a bus knows of the queue groups of every bus sharing
// its broker: group -> registrations, in the order of the shared log.
type groupView struct {
	mu   sync.RWMutex
	regs map[string]map[groupReg]struct{}
	refs map[groupReg]int // this bus's own subscriptions per group and pattern
}

type groupReg struct{ node, group, pattern string }

func (f feed) Group(node, group, pattern string, joined bool) {
	v := &f.b.groups
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.regs == nil {
		v.regs = make(map[string]map[groupReg]struct{})
	}
	if group == "" && !joined {
		for g, set := range v.regs {
			for r := range set {
				if r.node == node {
					delete(set, r)
				}
			}
			if len(set) == 0 {
				delete(v.regs, g)
			}
		}
		return
	}
	r := groupReg{node, group, pattern}
	set := v.regs[group]
	if joined {
		if set == nil {
			set = make(map[groupReg]struct{})
			v.regs[group] = set
		}
		set[r] = struct{}{}
	} else {
		delete(set, r)
		if len(set) == 0 {
			delete(v.regs, group)
		}
	}
}

// ownsGroup reports whether this bus's members of group get the message
// seq of topic: the buses registered for the group on a matching pattern
// are ordered by name, and the message's number picks one. While the view
// has none (this bus's own registration not back yet), the bus keeps it.
func (b *Bus) ownsGroup(group, topic string, seq uint64) bool {
	if _, ok := b.cfg.broker.(GroupBroker); !ok {
		return true
	}
	v := &b.groups
	v.mu.RLock()
	var nodes []string
	for r := range v.regs[group] {
		if Match(r.pattern, topic) && !slices.Contains(nodes, r.node) {
			nodes = append(nodes, r.node)
		}
	}
	v.mu.RUnlock()
	if len(nodes) == 0 {
		return true
	}
	slices.Sort(nodes)
	return nodes[pick(topic, seq)%uint64(len(nodes))] == b.node
}

// pick hashes a message's topic and number (FNV-1a), the same on every bus.
func pick(topic string, seq uint64) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := 0; i < len(topic); i++ {
		h = (h ^ uint64(topic[i])) * prime
	}
	for i := 56; i >= 0; i -= 8 {
		h = (h ^ uint64(byte(seq>>i))) * prime
	}
	return h
}

// shareGroup tells the broker about this bus's first subscription in a
// group on a pattern (joined) or its last one ending.
// ctx bounds the broker's call; without a deadline, 5 seconds do.
func (b *Bus) shareGroup(ctx context.Context, group, pattern string, joined bool) {
	gb, ok := b.cfg.broker.(GroupBroker)
	if !ok || group == "" {
		return
	}
	v := &b.groups
	r := groupReg{group: group, pattern: pattern}
	v.mu.Lock()
	if v.refs == nil {
		v.refs = make(map[groupReg]int)
	}
	if joined {
		v.refs[r]++
	} else {
		v.refs[r]--
	}
	n := v.refs[r]
	if n == 0 {
		delete(v.refs, r)
	}
	v.mu.Unlock()
	if joined && n != 1 || !joined && n != 0 {
		return
	}
	if !joined && b.closed() {
		return // the broker forgets a closed bus's groups itself
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	if err := gb.ShareGroup(ctx, group, pattern, joined); err != nil {
		b.log.Error("bus: share queue group", "group", group, "pattern", pattern, "err", err)
	}
}

// checkAhead returns [ErrNotCovered] when p, a position of the topic's
// epoch past what the bus has applied, names a record the broker's history
// no longer holds (see HistoryChecker); nil otherwise.
func (ts *topicState) checkAhead(ctx context.Context, p Position) error {
	hc, ok := ts.b.store.(HistoryChecker)
	if !ok || !ts.persisted {
		return nil
	}
	ts.pubMu.Lock()
	ahead := p.Epoch == ts.epoch.Load() && p.Seq > ts.last
	ts.pubMu.Unlock()
	if !ahead {
		return nil
	}
	lost, err := hc.Lost(ctx, ts.name, p)
	if err != nil {
		return fmt.Errorf("bus: topic %q: check seq %d: %w", ts.name, p.Seq, err)
	}
	if lost {
		return fmt.Errorf("%w: topic %q: seq %d was lost when its history went back; it has a new epoch", ErrNotCovered, ts.name, p.Seq)
	}
	return nil
}
