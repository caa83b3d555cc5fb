package persist

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/courierbus/courier/bus"
)

// Store is a [bus.Store] kept in a Badger database in one directory: a log
// per topic, topic metadata and durable consumer positions. Make one with
// [Open] and release it with [Store.Close]. It is safe for concurrent use.
type Store struct {
	cfg    config
	db     *badger.DB
	marker *os.File // open and flock'ed while the store is open
	dur    *durability

	// gate orders operations against Close: an operation holds it for
	// reading while it registers in inflight; Close takes it for writing to
	// set closed, then waits for inflight.
	gate     sync.RWMutex
	closed   bool
	inflight sync.WaitGroup

	ops    chan *op      // to the writer
	stopBG chan struct{} // closed to stop the background loop
	stopW  chan struct{} // closed to stop the writer
	bgWG   sync.WaitGroup
	wWG    sync.WaitGroup

	closeOnce sync.Once

	// failed holds the error of a failed sync: the disk's state is unknown
	// after one, so every later write fails with it.
	failed atomic.Pointer[error]

	mu     sync.RWMutex
	topics map[string]topicState // committed state of topics seen since Open

	w      writer    // the writer goroutine's own state
	opPool sync.Pool // of *op

	// batches counts committed batches; committed the changes in them.
	batches   atomic.Uint64
	committed atomic.Uint64
	// dropped counts the records Open dropped from torn tails.
	dropped uint64
	size    dirSize

	// failNext and failSync, when set by a test, make the writer fail the
	// next batch's commit or sync with the error they return.
	failNext atomic.Pointer[func() error]
	failSync atomic.Pointer[func() error]
}

func checkTopic(topic string) error {
	if topic == "" || len(topic) > maxTopicLen || strings.IndexByte(topic, 0) >= 0 {
		return fmt.Errorf("%w: %q", bus.ErrInvalidTopic, topic)
	}
	return nil
}

// state returns topic's committed state; ok is false when the topic was
// never created.
func (s *Store) state(topic string) (st topicState, ok bool, err error) {
	s.mu.RLock()
	st, ok = s.topics[topic]
	s.mu.RUnlock()
	if ok {
		return st, true, nil
	}
	st, ok, err = s.loadState(topic)
	if err != nil || !ok {
		return st, ok, err
	}
	// The writer installs every state it commits, and only it changes
	// them: one already there is at least as new as what was read.
	s.mu.Lock()
	if cur, there := s.topics[topic]; there {
		st = cur
	} else {
		s.topics[topic] = st
	}
	s.mu.Unlock()
	return st, true, nil
}

// loadState reads topic's metadata from Badger.
func (s *Store) loadState(topic string) (topicState, bool, error) {
	key := metaKey(topic)
	var st topicState
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			m, err := decodeMeta(v)
			if err != nil {
				return corrupt(key, err)
			}
			st = m
			return nil
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return topicState{}, false, nil
	}
	return st, err == nil, err
}

// first returns the lowest sequence number of st that reads may see: the
// stored first, raised by the topic's Count limit.
func (s *Store) first(topic string, st topicState) uint64 {
	first := st.first
	if n := s.cfg.limits(topic).Count; n > 0 && st.last >= uint64(n) {
		first = max(first, st.last-uint64(n)+1)
	}
	return first
}

func (s *Store) public(topic string, st topicState) bus.TopicState {
	ts := bus.TopicState{Epoch: st.epoch, Last: st.last}
	if f := s.first(topic, st); f <= st.last {
		ts.First = f
	}
	return ts
}

// Topic implements [bus.Store]. Creating a topic writes its epoch through
// the writer, so it waits for a commit (and a sync, unless [Buffered]).
func (s *Store) Topic(ctx context.Context, topic string) (bus.TopicState, error) {
	if err := s.enter(ctx); err != nil {
		return bus.TopicState{}, err
	}
	defer s.end()
	if err := checkTopic(topic); err != nil {
		return bus.TopicState{}, fmt.Errorf("persist: topic: %w", err)
	}
	st, ok, err := s.state(topic)
	if err != nil {
		return bus.TopicState{}, fmt.Errorf("persist: topic %q: %w", topic, err)
	}
	if !ok {
		o := s.newOp(opCreate, topic)
		if err := s.do(ctx, o); err != nil {
			return bus.TopicState{}, err
		}
		st, err = o.ts, o.err
		s.releaseOp(o)
		if err != nil {
			return bus.TopicState{}, fmt.Errorf("persist: topic %q: %w", topic, err)
		}
	}
	return s.public(topic, st), nil
}

// Append implements [bus.Store]: it hands r to the store's writer, which
// commits the records of all concurrent callers as one batch, and returns
// r's sequence number once the batch is committed and (unless [Buffered])
// synced to disk. If ctx is done before the record joins a batch, Append
// returns ctx.Err() and nothing is written; once it has joined, Append waits
// for the batch. A record whose encoding exceeds [MaxRecordSize] fails with
// [ErrTooLarge].
func (s *Store) Append(ctx context.Context, topic string, r bus.Record) (uint64, error) {
	if err := s.enter(ctx); err != nil {
		return 0, err
	}
	defer s.end()
	if err := checkTopic(topic); err != nil {
		return 0, fmt.Errorf("persist: append: %w", err)
	}
	if p := s.failed.Load(); p != nil {
		return 0, fmt.Errorf("persist: append %q: store failed: %w", topic, *p)
	}
	size := recordSize(&r)
	if size > s.cfg.maxRecord {
		return 0, fmt.Errorf("persist: append %q: %w: %d bytes encoded, limit %d", topic, ErrTooLarge, size, s.cfg.maxRecord)
	}
	o := s.newOp(opAppend, topic)
	o.rec, o.size = r, size
	if err := s.do(ctx, o); err != nil {
		return 0, err
	}
	seq, err := o.seq, o.err
	s.releaseOp(o)
	if err != nil {
		return 0, fmt.Errorf("persist: append %q: %w", topic, err)
	}
	return seq, nil
}

// Read implements [bus.Store]. It seeks straight to from and reads records
// up to the topic's last committed one. A missing record inside the held
// range, or one that does not decode, is an error wrapping [ErrCorrupt];
// records of other topics stay readable.
func (s *Store) Read(ctx context.Context, topic string, from uint64, limit int, buf []bus.Record) ([]bus.Record, error) {
	if err := s.enter(ctx); err != nil {
		return buf, err
	}
	defer s.end()
	if err := checkTopic(topic); err != nil {
		return buf, fmt.Errorf("persist: read: %w", err)
	}
	st, ok, err := s.state(topic)
	if err != nil {
		return buf, fmt.Errorf("persist: read %q: %w", topic, err)
	}
	from = max(from, 1)
	if !ok || from > st.last || limit <= 0 {
		return buf, nil
	}
	if from < s.first(topic, st) {
		return buf, fmt.Errorf("persist: read %q from %d: %w", topic, from, bus.ErrNotCovered)
	}
	n0 := len(buf)
	prefix := appendLogPrefix(nil, topic)
	err = s.db.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = prefix
		it := txn.NewIterator(opt)
		defer it.Close()
		want := from
		for it.Seek(appendLogKey(nil, topic, from)); want <= st.last && limit > 0; it.Next() {
			if !it.Valid() {
				return s.missing(topic, want)
			}
			item := it.Item()
			seq, ok := seqOf(item.Key(), prefix)
			if !ok {
				return corrupt(item.KeyCopy(nil), errors.New("malformed log key"))
			}
			if seq != want {
				return s.missing(topic, want)
			}
			var r bus.Record
			err := item.Value(func(v []byte) error {
				if err := decodeRecord(v, &r); err != nil {
					return corrupt(item.KeyCopy(nil), err)
				}
				return nil
			})
			if err != nil {
				return err
			}
			r.Seq = seq
			buf = append(buf, r)
			want++
			limit--
			if want&255 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return buf[:n0], fmt.Errorf("persist: read %q from %d: %w", topic, from, err)
	}
	return buf, nil
}

// missing explains why the record seq that should be in topic's log is not:
// retention removed it meanwhile (bus.ErrNotCovered), or it is lost
// (ErrCorrupt).
func (s *Store) missing(topic string, seq uint64) error {
	if st, ok, err := s.state(topic); err == nil && ok && seq < s.first(topic, st) {
		return bus.ErrNotCovered
	}
	return corrupt(appendLogKey(nil, topic, seq), errors.New("record missing from the log"))
}

// SeqAt implements [bus.Store]. It binary-searches the held records by
// Time, so it assumes times rise with sequence numbers, as they do when the
// bus stamps them.
func (s *Store) SeqAt(ctx context.Context, topic string, t time.Time) (uint64, error) {
	if err := s.enter(ctx); err != nil {
		return 0, err
	}
	defer s.end()
	if err := checkTopic(topic); err != nil {
		return 0, fmt.Errorf("persist: seq at: %w", err)
	}
	st, ok, err := s.state(topic)
	if err != nil {
		return 0, fmt.Errorf("persist: seq at %q: %w", topic, err)
	}
	if !ok {
		return 1, nil
	}
	lo, hi := s.first(topic, st), st.last+1 // answer in [lo, hi]
	err = s.db.View(func(txn *badger.Txn) error {
		for lo < hi {
			mid := lo + (hi-lo)/2
			key := appendLogKey(nil, topic, mid)
			before := true // a record trimmed meanwhile was older
			item, err := txn.Get(key)
			switch {
			case errors.Is(err, badger.ErrKeyNotFound):
			case err != nil:
				return err
			default:
				err = item.Value(func(v []byte) error {
					rt, err := decodeRecordTime(v)
					if err != nil {
						return corrupt(key, err)
					}
					before = rt.Before(t)
					return nil
				})
				if err != nil {
					return err
				}
			}
			if before {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("persist: seq at %q: %w", topic, err)
	}
	return lo, nil
}

// Consumer implements [bus.Store].
func (s *Store) Consumer(ctx context.Context, topic, name string) (bus.ConsumerState, bool, error) {
	if err := s.enter(ctx); err != nil {
		return bus.ConsumerState{}, false, err
	}
	defer s.end()
	if err := checkTopic(topic); err != nil {
		return bus.ConsumerState{}, false, fmt.Errorf("persist: consumer %q: %w", name, err)
	}
	key := consumerKey(topic, name)
	var c bus.ConsumerState
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			c, err = decodeConsumer(v)
			if err != nil {
				return corrupt(key, err)
			}
			return nil
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return bus.ConsumerState{}, false, nil
	}
	if err != nil {
		return bus.ConsumerState{}, false, fmt.Errorf("persist: consumer %q on %q: %w", name, topic, err)
	}
	return c, true, nil
}

// SaveConsumer implements [bus.Store]. The state is written through the
// writer, in the same batches as appends, and is as durable as they are
// when SaveConsumer returns.
func (s *Store) SaveConsumer(ctx context.Context, topic, name string, c bus.ConsumerState) error {
	return s.consumerOp(ctx, opSaveConsumer, topic, name, c)
}

// DeleteConsumer implements [bus.Store]. Like SaveConsumer it goes through
// the writer.
func (s *Store) DeleteConsumer(ctx context.Context, topic, name string) error {
	return s.consumerOp(ctx, opDeleteConsumer, topic, name, bus.ConsumerState{})
}

func (s *Store) consumerOp(ctx context.Context, kind opKind, topic, name string, c bus.ConsumerState) error {
	what := "save consumer"
	if kind == opDeleteConsumer {
		what = "delete consumer"
	}
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.end()
	if err := checkTopic(topic); err != nil {
		return fmt.Errorf("persist: %s %q: %w", what, name, err)
	}
	if p := s.failed.Load(); p != nil {
		return fmt.Errorf("persist: %s %q on %q: store failed: %w", what, name, topic, *p)
	}
	o := s.newOp(kind, topic)
	o.name, o.cons = name, c
	if err := s.do(ctx, o); err != nil {
		return err
	}
	err := o.err
	s.releaseOp(o)
	if err != nil {
		return fmt.Errorf("persist: %s %q on %q: %w", what, name, topic, err)
	}
	return nil
}

// do hands o to the writer and waits for its result. It returns ctx.Err()
// if ctx is done before the writer takes o into a batch; after that it
// waits for the batch regardless of ctx. A nil result means o's result
// fields are set; the caller then releases o.
func (s *Store) do(ctx context.Context, o *op) error {
	if ctx.Done() == nil { // never cancelled: skip the selects
		s.ops <- o
		<-o.done
		return nil
	}
	select {
	case s.ops <- o:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-o.done:
		return nil
	case <-ctx.Done():
		if o.state.CompareAndSwap(opPending, opCancelled) {
			return ctx.Err() // the writer will skip o, and o is not reused
		}
		<-o.done
		return nil
	}
}

// Stats is a snapshot of a store's counters. It is [bus.StoreStats], so
// that observe reads it without importing persist.
type Stats = bus.StoreStats

// Stats returns a snapshot of the store's counters. It is safe for
// concurrent use and cheap: the disk sizes are measured from the directory
// at most once a second.
func (s *Store) Stats() Stats {
	st := Stats{Batches: s.batches.Load(), Ops: s.committed.Load(), Failed: s.failed.Load() != nil, Dropped: s.dropped}
	if s.begin() {
		defer s.end()
		st.LSMBytes, st.LogBytes = s.size.get(s.dur.dir)
	}
	return st
}
