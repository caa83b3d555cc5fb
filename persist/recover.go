package persist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/table"
	"google.golang.org/protobuf/proto"

	"github.com/courierbus/courier/bus"
)

// What a crash can leave that Open repairs. Both repairs drop only what no
// caller was told is committed: a synced store acknowledges a batch after
// its sync (sync.go), so a record that did not reach the disk whole was
// never acknowledged, and never delivered.

// openBadger opens Badger in dir. A power cut between Badger listing a new
// table in its MANIFEST (which it syncs) and the table's name reaching the
// disk (which it does not sync) leaves a MANIFEST naming a missing file, and
// Badger refuses to open it ("file does not exist for table"). The
// memtable log that table was built from is then still in the directory:
// removing the log is a change to the directory made after the table's
// name, and no directory sync came in between, or the name would be there.
// So openBadger drops the missing tables from the MANIFEST (repairManifest)
// and opens again; Badger replays their records from the memtable logs.
func openBadger(dir string, cfg *config) (*badger.DB, error) {
	db, err := badger.Open(badgerOptions(dir, cfg))
	if err == nil || !strings.Contains(err.Error(), "file does not exist for table") {
		return db, err
	}
	dropped, rerr := repairManifest(dir, cfg)
	if rerr != nil {
		return nil, fmt.Errorf("%w; not repaired: %v", err, rerr)
	}
	cfg.logger.Warn("persist: the manifest named tables that a crash lost before their names were synced; dropped them from it, their records come from the memtable logs", "dir", dir, "tables", dropped)
	return badger.Open(badgerOptions(dir, cfg))
}

// repairManifest rewrites dir's MANIFEST without the tables whose files are
// missing, as Badger rewrites it (one change set creating every table,
// written beside it, synced, renamed over it, the directory synced), and
// returns the ids it dropped. It refuses when no memtable log is there to
// hold the missing tables' records.
func repairManifest(dir string, cfg *config) ([]uint64, error) {
	path := filepath.Join(dir, badger.ManifestFilename)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var head [8]byte // magic, external magic, Badger's format version
	if _, err := io.ReadFull(f, head[:]); err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	m, _, err := badger.ReplayManifestFile(f, binary.BigEndian.Uint16(head[4:6]), badgerOptions(dir, cfg))
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	mems, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	if err != nil {
		return nil, err
	}
	set := &pb.ManifestChangeSet{}
	var dropped []uint64
	for id, t := range m.Tables {
		_, err := os.Stat(filepath.Join(dir, table.IDToFilename(id)))
		switch {
		case errors.Is(err, os.ErrNotExist):
			dropped = append(dropped, id)
			continue
		case err != nil:
			return nil, err
		}
		set.Changes = append(set.Changes, &pb.ManifestChange{
			Id:             id,
			Op:             pb.ManifestChange_CREATE,
			Level:          uint32(t.Level),
			KeyId:          t.KeyID,
			EncryptionAlgo: pb.EncryptionAlgo_aes, // as Badger writes it; unused without a key
			Compression:    uint32(t.Compression),
		})
	}
	switch {
	case len(dropped) == 0:
		return nil, errors.New("no table is missing")
	case len(mems) == 0:
		return nil, fmt.Errorf("tables %v are missing and no memtable log holds their records", dropped)
	}
	body, err := proto.Marshal(set)
	if err != nil {
		return nil, err
	}
	buf := append([]byte(nil), head[:]...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(body)))
	buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
	buf = append(buf, body...)
	tmp := filepath.Join(dir, "MANIFEST-REWRITE")
	if err := writeSynced(tmp, buf); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	return dropped, syncDir(dir)
}

// recoverTails drops every topic's torn tail: the records at the end of its
// log that cannot be read, after the last one that can. A synced store
// never acknowledged them (see above). A buffered one may have, and its
// subscribers may have seen them, so a topic that loses a tail gets a new
// epoch: positions under the old one are not silently continued by other
// records under the same numbers. With renew, every topic gets a new epoch
// (see lastRun.mayHaveLost). It runs in Open, before the writer starts, and
// returns how many records it dropped.
func (s *Store) recoverTails(renew bool) (uint64, error) {
	type torn struct {
		topic string
		st    topicState
		from  uint64 // first unreadable record
		bytes uint64 // their stored size
	}
	var tails []torn
	prefix := []byte{metaKind, '/'}
	err := s.db.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = prefix
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			topic := string(it.Item().Key()[len(prefix):])
			var st topicState
			if err := it.Item().Value(func(v []byte) (err error) { st, err = decodeMeta(v); return err }); err != nil {
				continue // a topic with bad metadata fails when it is used, naming the key
			}
			t := torn{topic: topic, st: st, from: st.last + 1}
			for t.from > st.first {
				size, ok := readable(txn, topic, t.from-1)
				if ok {
					break
				}
				t.from--
				t.bytes += size
			}
			if t.from <= st.last || renew {
				tails = append(tails, t)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, t := range tails {
		err := s.db.Update(func(txn *badger.Txn) error {
			for seq := t.from; seq <= t.st.last; seq++ {
				if err := txn.Delete(appendLogKey(nil, t.topic, seq)); err != nil {
					return err
				}
			}
			st := t.st
			st.last = t.from - 1
			st.bytes -= min(st.bytes, t.bytes)
			st.epoch = newEpoch()
			return txn.Set(metaKey(t.topic), appendMeta(nil, st))
		})
		if err != nil {
			return n, fmt.Errorf("drop the torn tail of %q: %w", t.topic, err)
		}
		if t.from > t.st.last {
			continue
		}
		n += t.st.last - t.from + 1
		s.cfg.logger.Warn("persist: dropped records a crash left unreadable at the end of a topic's log; the topic has a new epoch", "topic", t.topic, "from", t.from, "to", t.st.last)
	}
	if renew {
		s.cfg.logger.Warn("persist: the last run was buffered and did not close before the machine stopped; every topic has a new epoch, since acknowledged records may be lost", "topics", len(tails))
	}
	if len(tails) > 0 {
		if err := s.db.Sync(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// readable reports whether topic's record seq is there and decodes, and
// its stored size when it is there.
func readable(txn *badger.Txn, topic string, seq uint64) (uint64, bool) {
	item, err := txn.Get(appendLogKey(nil, topic, seq))
	if err != nil {
		return 0, false
	}
	size := uint64(item.ValueSize())
	var r bus.Record
	err = item.Value(func(v []byte) error { return decodeRecord(v, &r) })
	return size, err == nil
}
