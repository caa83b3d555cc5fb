package bus

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// attach decides where the subscription starts and registers it, so that
// nothing published meanwhile is missed or seen twice. The store is read
// with no lock held: what the decision needs from it is loaded first, and
// the decision is made, and the subscription registered, under the
// topic's pubMu; a decision that finds it needs more from the store
// releases the lock, loads it and decides again.
func (s *Subscription) attach(ctx context.Context) error {
	b, ts := s.b, s.ts
	if ts != nil && s.cfg.start.kind == startAfter && s.cfg.durable == "" {
		// Before taking the lock: it may ask the broker.
		if err := ts.checkAhead(ctx, s.cfg.start.pos); err != nil {
			return err
		}
	}
	var ds *durableState
	isNew := false
	if s.cfg.durable != "" {
		st, ok, err := b.store.Consumer(ctx, ts.name, s.cfg.durable)
		if err != nil {
			return fmt.Errorf("bus: load durable %q on %q: %w", s.cfg.durable, ts.name, err)
		}
		ds = &durableState{floor: st.AckFloor, delivered: st.Delivered, acked: make(map[uint64]struct{}, len(st.Acked))}
		for _, q := range st.Acked {
			ds.acked[q] = struct{}{}
		}
		isNew = !ok
	}
	var sv storeView
	for ts != nil {
		ts.pubMu.Lock()
		err := s.place(ds, isNew, &sv)
		if err == nil {
			defer ts.pubMu.Unlock()
			break
		}
		ts.pubMu.Unlock()
		if err != errNeedStore {
			return err
		}
		if err := sv.load(ctx, s); err != nil {
			return err
		}
	}
	s.durable = ds

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed() {
		return ErrClosed
	}
	if ds != nil {
		key := [2]string{ts.name, s.cfg.durable}
		if b.durables[key] != nil {
			return fmt.Errorf("%w: %q on %q", ErrDurableActive, s.cfg.durable, ts.name)
		}
		b.durables[key] = s
	}
	b.trie.insert(s.pattern, s)
	b.subs[s] = struct{}{}
	b.gen.Add(1)
	n := s.cfg.maxInFlight
	s.workers.Store(int32(n))
	b.wg.Add(n)
	for range n {
		go func() {
			defer b.wg.Done()
			s.work()
		}()
	}
	return nil
}

// hasNilCtx reports whether opts hold Context(nil).
func hasNilCtx(opts []SubscribeOption) bool {
	for _, o := range opts {
		if c, ok := o.(ctxOpt); ok && c.ctx == nil {
			return true
		}
	}
	return false
}

// errNeedStore tells attach that deciding needs what the store holds.
var errNeedStore = errors.New("bus: the store must be read first")

// storeView is what attach read from the store, outside any lock.
type storeView struct {
	want             uint8 // what place asked for: needFirst, needSeqAt
	first, seqAt     uint64
	hasFirst, hasSeq bool
}

const (
	needFirst uint8 = 1 << iota
	needSeqAt
)

// load reads what place asked for.
func (v *storeView) load(ctx context.Context, s *Subscription) error {
	ts := s.ts
	if v.want&needFirst != 0 {
		st, err := s.b.store.Topic(ctx, ts.name)
		if err != nil {
			return fmt.Errorf("bus: subscribe %q: %w", ts.name, err)
		}
		v.first, v.hasFirst = st.First, true
	}
	if v.want&needSeqAt != 0 {
		seq, err := s.b.store.SeqAt(ctx, ts.name, s.cfg.start.t)
		if err != nil {
			return fmt.Errorf("bus: subscribe %q: %w", ts.name, err)
		}
		v.seqAt, v.hasSeq = seq, true
	}
	v.want = 0
	return nil
}

// place decides where the subscription starts, from the topic's state and
// what the store said; errNeedStore when it needs more of the latter.
// Caller holds ts.pubMu.
func (s *Subscription) place(ds *durableState, isNew bool, sv *storeView) error {
	ts := s.ts
	var from uint64
	var err error
	switch {
	case ds != nil && isNew:
		// A new durable starts where its Start option says.
		if from, err = s.startSeq(sv); err != nil {
			return err
		}
		ds.floor, ds.delivered = from-1, from-1
	case ds != nil:
		from = ds.floor + 1
		if err := s.covered(from, sv); err != nil {
			return err
		}
	default:
		if from, err = s.startSeq(sv); err != nil {
			return err
		}
	}
	s.liveStart = ts.last + 1
	s.cursor = min(from, s.liveStart)
	s.skipBelow = from
	return nil
}

// startSeq turns the Start option into the first sequence number wanted.
// Caller holds ts.pubMu.
func (s *Subscription) startSeq(sv *storeView) (uint64, error) {
	ts, st := s.ts, s.cfg.start
	switch st.kind {
	case startFirst:
		first, n := ts.hist.bounds()
		if ts.persisted {
			if !sv.hasFirst {
				sv.want |= needFirst
				return 0, errNeedStore
			}
			return max(sv.first, 1), nil
		}
		if n == 0 {
			return ts.last + 1, nil
		}
		return first, nil
	case startSeq:
		return max(st.seq, 1), s.covered(max(st.seq, 1), sv)
	case startAfter:
		if ep := ts.epoch.Load(); st.pos.Epoch != ep {
			return 0, fmt.Errorf("%w: topic %q: epoch %d, history is epoch %d", ErrNotCovered, ts.name, st.pos.Epoch, ep)
		}
		if st.pos.Seq == math.MaxUint64 {
			return 0, fmt.Errorf("%w: no message comes after seq %d", ErrInvalidOption, st.pos.Seq)
		}
		// A position past the last message (a node of a cluster that has
		// not caught up yet) starts there: what comes until then is skipped.
		return st.pos.Seq + 1, s.covered(st.pos.Seq+1, sv)
	case startTime:
		if ts.persisted {
			if !sv.hasSeq {
				sv.want |= needSeqAt
				return 0, errNeedStore
			}
			return sv.seqAt, nil
		}
		return ts.hist.seqAt(s.b.at(st.t)), nil
	}
	return ts.last + 1, nil
}

// covered reports whether history still holds seq (or seq is in the
// future). Caller holds ts.pubMu.
func (s *Subscription) covered(seq uint64, sv *storeView) error {
	ts := s.ts
	if seq > ts.last {
		return nil
	}
	first, _ := ts.hist.bounds()
	if seq >= first {
		return nil
	}
	if ts.persisted {
		if !sv.hasFirst {
			sv.want |= needFirst
			return errNeedStore
		}
		if sv.first != 0 && seq >= sv.first {
			return nil
		}
	}
	return fmt.Errorf("%w: topic %q seq %d", ErrNotCovered, ts.name, seq)
}
