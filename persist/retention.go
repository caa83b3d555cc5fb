package persist

import (
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// maxTrim bounds the records one trim operation deletes, so that a trim
// fits a batch beside the appends it shares it with.
const maxTrim = 1024

// background is the store's maintenance goroutine: every retention
// interval it deletes records past their topic's limits, and every
// minute it runs Badger's value-log garbage collection.
func (s *Store) background() {
	var retain <-chan time.Time
	if s.cfg.anyLimits() {
		t := time.NewTicker(s.cfg.retentionEvery)
		defer t.Stop()
		retain = t.C
	}
	gc := time.NewTicker(s.cfg.gcEvery)
	defer gc.Stop()
	for {
		select {
		case <-s.stopBG:
			return
		case now := <-retain:
			s.retain(now)
		case <-gc.C:
			s.collect()
		}
	}
}

func (s *Store) stopping() bool {
	select {
	case <-s.stopBG:
		return true
	default:
		return false
	}
}

// retain runs one retention pass over every topic with limits.
func (s *Store) retain(now time.Time) {
	names, err := s.topicNames()
	if err != nil {
		s.cfg.logger.Error("persist: retention: list topics", "err", err)
		return
	}
	for _, topic := range names {
		if s.stopping() {
			return
		}
		if lim := s.cfg.limits(topic); !lim.zero() {
			s.trim(topic, lim, now)
		}
	}
}

// topicNames lists every topic in the store.
func (s *Store) topicNames() ([]string, error) {
	var names []string
	prefix := []byte{metaKind, '/'}
	err := s.db.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = prefix
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			names = append(names, string(it.Item().Key()[len(prefix):]))
		}
		return nil
	})
	return names, err
}

// trim deletes topic's records past lim, in steps of at most maxTrim
// records, each committed by the writer.
func (s *Store) trim(topic string, lim Limits, now time.Time) {
	for !s.stopping() {
		st, ok, err := s.state(topic)
		if err != nil || !ok {
			if err != nil {
				s.cfg.logger.Error("persist: retention", "topic", topic, "err", err)
			}
			return
		}
		to, bytes, err := s.plan(topic, st, lim, now)
		if err != nil {
			s.cfg.logger.Error("persist: retention", "topic", topic, "err", err)
			return
		}
		if to <= st.first {
			return
		}
		o := s.newOp(opTrim, topic)
		o.from, o.to, o.bytes = st.first, to, bytes
		if !s.submit(o) {
			return
		}
		err = o.err
		s.releaseOp(o)
		if err != nil {
			s.cfg.logger.Error("persist: retention", "topic", topic, "err", err)
			return
		}
		if to-st.first < maxTrim {
			return
		}
	}
}

// plan returns the new first sequence number of topic after dropping, from
// st.first on, at most maxTrim records that are past lim, and the encoded
// bytes they hold.
func (s *Store) plan(topic string, st topicState, lim Limits, now time.Time) (to, bytes uint64, err error) {
	countFirst := s.first(topic, st)
	var cutoff time.Time
	if lim.Age > 0 {
		cutoff = now.Add(-lim.Age)
	}
	prefix := appendLogPrefix(nil, topic)
	to = st.first
	err = s.db.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = prefix
		it := txn.NewIterator(opt)
		defer it.Close()
		remaining := st.bytes
		for it.Seek(appendLogKey(nil, topic, st.first)); it.Valid() && to <= st.last && to-st.first < maxTrim; it.Next() {
			item := it.Item()
			if seq, ok := seqOf(item.Key(), prefix); !ok || seq != to {
				return corrupt(appendLogKey(nil, topic, to), errors.New("record missing from the log"))
			}
			drop := to < countFirst
			var size uint64
			err := item.Value(func(v []byte) error {
				size = uint64(len(v))
				if !drop && lim.Bytes > 0 && remaining > uint64(lim.Bytes) {
					drop = true
				}
				if !drop && lim.Age > 0 {
					t, err := decodeRecordTime(v)
					if err != nil {
						return corrupt(item.KeyCopy(nil), err)
					}
					drop = t.Before(cutoff)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if !drop {
				break
			}
			remaining -= min(size, remaining)
			bytes += size
			to++
		}
		return nil
	})
	return to, bytes, err
}

// submit hands an internal op to the writer and waits for its result; it
// gives up, reporting false, when the store is closing.
func (s *Store) submit(o *op) bool {
	select {
	case s.ops <- o:
	case <-s.stopBG:
		return false
	}
	<-o.done
	return true
}

// collect runs Badger's value-log garbage collection until it finds
// nothing worth rewriting.
func (s *Store) collect() {
	for !s.stopping() {
		err := s.collectOnce()
		if err == nil {
			continue
		}
		if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
			s.cfg.logger.Error("persist: value log gc", "err", err)
		}
		return
	}
}

// collectOnce runs one pass of Badger's value-log GC. The pass moves a
// file's live values to the head of the log and then deletes the file,
// with no sync in between: a power cut could keep the deletion and lose the
// moved values. An iterator open across the pass makes Badger put off the
// deletion until it closes, so a synced store syncs the moved values (and
// any new file's name) first.
func (s *Store) collectOnce() error {
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{0}}) // holds off deletions
	defer it.Close()
	err := s.db.RunValueLogGC(0.5)
	if err == nil && !s.cfg.buffered {
		if serr := s.sync(true); serr != nil {
			s.failed.Store(&serr)
			s.cfg.logger.Error("persist: sync after value log gc failed; the store refuses writes until reopened", "err", serr)
			return serr
		}
	}
	return err
}
