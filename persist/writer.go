package persist

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/courierbus/courier/bus"
)

const (
	// opQueue is the capacity of the writer's queue. A caller that finds it
	// full waits (with its context) for room.
	opQueue = 4096
	// maxBatchOps bounds the operations committed as one batch.
	maxBatchOps = 4096
	// maxArena is the largest encoding buffer the writer keeps between
	// batches.
	maxArena = 4 << 20
)

type opKind uint8

const (
	opAppend opKind = iota
	opCreate
	opSaveConsumer
	opDeleteConsumer
	opTrim
)

// op states: the writer moves pending to taken when it puts the op in a
// batch; a caller whose context ends first moves it to cancelled.
const (
	opPending uint32 = iota
	opTaken
	opCancelled
)

// op is one request to the writer. The caller owns it until it is sent, the
// writer from then until it signals done, and the caller again after.
type op struct {
	kind  opKind
	state atomic.Uint32
	done  chan struct{} // buffered; the writer sends once per use

	topic string
	name  string            // consumer name
	rec   bus.Record        // opAppend; read by the writer while the caller waits
	size  int               // opAppend: encoded size
	cons  bus.ConsumerState // opSaveConsumer
	from  uint64            // opTrim: expected first
	to    uint64            // opTrim: new first
	bytes uint64            // opTrim: encoded bytes of records from..to-1

	// results
	seq uint64     // opAppend
	ts  topicState // opCreate
	err error
}

func (s *Store) newOp(kind opKind, topic string) *op {
	o, _ := s.opPool.Get().(*op)
	if o == nil {
		o = &op{done: make(chan struct{}, 1)}
	}
	o.kind, o.topic = kind, topic
	o.state.Store(opPending)
	return o
}

// releaseOp returns o to the pool. Only ops whose result was received are
// released: a cancelled one may still sit in the writer's queue.
func (s *Store) releaseOp(o *op) {
	done := o.done
	*o = op{done: done}
	s.opPool.Put(o)
}

// estimate returns o's share of a batch's byte budget.
func (o *op) estimate() int64 {
	const overhead = 32 // key framing, version suffix, entry metadata
	switch o.kind {
	case opAppend:
		return int64(len(o.topic) + o.size + overhead)
	case opSaveConsumer:
		return int64(len(o.topic) + len(o.name) + 20 + 10*len(o.cons.Acked) + overhead)
	case opTrim:
		return int64(o.to-o.from) * int64(len(o.topic)+overhead)
	default:
		return int64(len(o.topic) + len(o.name) + overhead)
	}
}

// entries returns how many Badger entries o writes, at most.
func (o *op) entries() int64 {
	if o.kind == opTrim {
		return int64(o.to - o.from)
	}
	return 1
}

// topicWork is a topic's state as the batch being built changes it.
type topicWork struct {
	name  string
	st    topicState
	dirty bool
}

// writer is the state of the goroutine that commits every change. Only
// that goroutine touches it.
type writer struct {
	s          *Store
	maxEntries int64
	maxBytes   int64

	batch   []*op
	carry   []*op // ops left over from a batch that did not fit one transaction
	work    map[string]*topicWork
	order   []*topicWork
	spare   []*topicWork
	arena   []byte
	entries []badger.Entry
}

func (w *writer) init(s *Store) {
	w.s = s
	// Stay well inside Badger's transaction limits, which derive from the
	// memtable size; build halves a batch that still does not fit.
	w.maxEntries = min(maxBatchOps, s.db.MaxBatchCount()/2)
	w.maxBytes = s.db.MaxBatchSize() / 2
	w.work = make(map[string]*topicWork)
}

// run is the writer goroutine: it takes every operation queued since the
// last batch, commits them as one Badger transaction, syncs once (unless
// buffered) and answers each caller.
func (w *writer) run() {
	for {
		w.batch = w.batch[:0]
		var entries, bytes int64
		add := func(o *op) {
			if o.state.CompareAndSwap(opPending, opTaken) {
				w.batch = append(w.batch, o)
				entries += o.entries() + 1 // + the topic's metadata
				bytes += o.estimate()
			}
		}
		if len(w.carry) > 0 {
			for _, o := range w.carry {
				w.batch = append(w.batch, o)
				entries += o.entries() + 1
				bytes += o.estimate()
			}
			w.carry = w.carry[:0]
		} else {
			select {
			case o := <-w.s.ops:
				add(o)
			case <-w.s.stopW:
				return
			}
		}
	gather:
		for entries < w.maxEntries && bytes < w.maxBytes {
			select {
			case o := <-w.s.ops:
				add(o)
			default:
				break gather
			}
		}
		if len(w.batch) > 0 {
			w.commit()
		}
	}
}

// commit writes w.batch in one transaction, or, if Badger finds it too
// big, the first half (and so on; the rest is carried to the next batch),
// syncs unless buffered, and answers the callers it wrote for.
func (w *writer) commit() {
	s := w.s
	ops := w.batch
	n := len(ops)
	start := time.Now()
	var err error
	if p := s.failed.Load(); p != nil {
		err = fmt.Errorf("store failed: %w", *p) // nothing more reaches the disk
	}
	for err == nil {
		err = w.try(ops[:n])
		if errors.Is(err, badger.ErrTxnTooBig) && n > 1 {
			err = nil
			n = (n + 1) / 2
			continue
		}
		break
	}
	w.carry = append(w.carry, ops[n:]...)
	ops = ops[:n]
	if err == nil && !s.cfg.buffered {
		// SyncWrites=false plus one sync per batch: Badger with SyncWrites
		// would sync once per transaction it merges, not once per batch.
		vlog := false
		for _, o := range ops {
			vlog = vlog || o.kind == opAppend && o.size >= valueThreshold
		}
		if serr := s.sync(vlog); serr != nil {
			err = fmt.Errorf("sync: %w", serr)
			s.failed.Store(&serr)
			s.cfg.logger.Error("persist: sync failed; the store refuses writes until reopened", "err", serr)
		}
	}
	if err == nil && s.cfg.onCommit != nil {
		var bytes int64
		for _, o := range ops {
			bytes += o.estimate()
		}
		s.cfg.onCommit(CommitInfo{Ops: len(ops), Bytes: bytes, Duration: time.Since(start)})
	}
	if err == nil {
		s.batches.Add(1)
		s.committed.Add(uint64(len(ops)))
		s.mu.Lock()
		for _, tw := range w.order {
			if tw.dirty {
				s.topics[tw.name] = tw.st
			}
		}
		s.mu.Unlock()
	}
	for _, o := range ops {
		if o.err == nil {
			o.err = err
		}
		if o.kind == opCreate {
			if tw := w.work[o.topic]; tw != nil {
				o.ts = tw.st
			}
		}
		o.done <- struct{}{}
	}
	if cap(w.arena) > maxArena {
		w.arena = nil
	}
}

// try builds and commits one transaction holding ops.
func (w *writer) try(ops []*op) error {
	txn := w.s.db.NewTransaction(true)
	defer txn.Discard()
	if err := w.build(txn, ops); err != nil {
		return err
	}
	if f := w.s.failNext.Swap(nil); f != nil {
		if err := (*f)(); err != nil {
			return err
		}
	}
	return txn.Commit()
}

// build adds ops to txn, assigning sequence numbers from the committed
// state, and then each changed topic's metadata. An op that fails on its
// own (its topic's metadata is corrupt) gets its error and is skipped; an
// error returned fails the whole batch.
func (w *writer) build(txn *badger.Txn, ops []*op) error {
	clear(w.work)
	w.spare = append(w.spare, w.order...)
	w.order = w.order[:0]
	w.arena = w.arena[:0]
	w.entries = w.entries[:0]
	for _, o := range ops {
		o.err = nil
		switch o.kind {
		case opAppend:
			tw, err := w.topic(o.topic, true)
			if err != nil {
				o.err = err
				continue
			}
			seq := tw.st.last + 1
			k := w.put(func(b []byte) []byte { return appendLogKey(b, o.topic, seq) })
			v := w.put(func(b []byte) []byte { return appendRecord(b, &o.rec) })
			if err := txn.SetEntry(w.entry(k, v)); err != nil {
				return err
			}
			tw.st.last = seq
			tw.st.bytes += uint64(len(v))
			tw.dirty = true
			o.seq = seq
		case opCreate:
			if _, err := w.topic(o.topic, true); err != nil {
				o.err = err
			}
		case opSaveConsumer:
			v := w.put(func(b []byte) []byte { return appendConsumer(b, &o.cons) })
			if err := txn.SetEntry(w.entry(consumerKey(o.topic, o.name), v)); err != nil {
				return err
			}
		case opDeleteConsumer:
			if err := txn.Delete(consumerKey(o.topic, o.name)); err != nil {
				return err
			}
		case opTrim:
			tw, err := w.topic(o.topic, false)
			if err != nil {
				o.err = err
				continue
			}
			if tw == nil || tw.st.first != o.from || o.to > tw.st.last+1 || o.to <= o.from {
				continue // planned against a state that has changed; the next pass replans
			}
			for seq := o.from; seq < o.to; seq++ {
				k := w.put(func(b []byte) []byte { return appendLogKey(b, o.topic, seq) })
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			tw.st.first = o.to
			tw.st.bytes -= min(o.bytes, tw.st.bytes)
			tw.dirty = true
		}
	}
	for _, tw := range w.order {
		if tw.dirty {
			v := w.put(func(b []byte) []byte { return appendMeta(b, tw.st) })
			if err := txn.SetEntry(w.entry(metaKey(tw.name), v)); err != nil {
				return err
			}
		}
	}
	return nil
}

// put appends to the arena with f and returns what it appended. Badger
// keeps the slices until the transaction ends; the arena is reused only
// after that.
func (w *writer) put(f func([]byte) []byte) []byte {
	start := len(w.arena)
	w.arena = f(w.arena)
	return w.arena[start:len(w.arena):len(w.arena)]
}

// entry returns an entry for k, v. Entries come from a slice reused across
// batches; a slice that must grow is replaced, not copied, so entries
// handed out earlier stay where the transaction points.
func (w *writer) entry(k, v []byte) *badger.Entry {
	if len(w.entries) == cap(w.entries) {
		w.entries = make([]badger.Entry, 0, max(64, 2*cap(w.entries)))
	}
	w.entries = append(w.entries, badger.Entry{Key: k, Value: v})
	return &w.entries[len(w.entries)-1]
}

// topic returns topic's work state in this batch, loading the committed
// state first. A topic never created is created when create is set (new
// epoch, empty log) and is nil otherwise.
func (w *writer) topic(name string, create bool) (*topicWork, error) {
	if tw := w.work[name]; tw != nil {
		return tw, nil
	}
	st, ok, err := w.s.state(name)
	if err != nil {
		return nil, err
	}
	dirty := false
	if !ok {
		if !create {
			return nil, nil
		}
		st = topicState{epoch: newEpoch(), first: 1}
		dirty = true
	}
	var tw *topicWork
	if n := len(w.spare); n > 0 {
		tw = w.spare[n-1]
		w.spare = w.spare[:n-1]
	} else {
		tw = new(topicWork)
	}
	*tw = topicWork{name: name, st: st, dirty: dirty}
	w.work[name] = tw
	w.order = append(w.order, tw)
	return tw, nil
}

// newEpoch returns a random non-zero epoch.
func newEpoch() uint64 {
	for {
		if e := rand.Uint64(); e != 0 {
			return e
		}
	}
}
