package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/persist"
)

// Persistence modes.
const (
	Synced   = "synced"   // what a publish acknowledged survives a power cut
	Buffered = "buffered" // survives a process crash, not a power cut
)

// RecordSize is the payload size of every persisted record.
const RecordSize = 64

// RecordData returns the 64-byte payload every persisted scenario stores.
func RecordData() []byte {
	data := make([]byte, RecordSize)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	return data
}

// Writer is one implementation of the persisted publish scenario.
type Writer struct {
	Name string // "badger-writebatch", "courier-append", ...
	Mode string // Synced or Buffered
	Note string
	// Baseline writers take no publishers: they are one writer.
	Baseline bool
	// Open opens a fresh store in dir (an empty directory) for pubs
	// concurrent publishers.
	Open func(dir string, pubs int) (WriteFlow, error)
}

// WriteFlow is an open store with its publishers.
type WriteFlow interface {
	// Run writes up to n records, fewer if ctx ends first, and returns the
	// number committed (as durable as the mode promises) when it returns.
	Run(ctx context.Context, n int) (int64, error)
	Close() error
}

// RunWrite measures one run of fl: n records, stopped at d.
func RunWrite(fl WriteFlow, n int, d time.Duration) (Metrics, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return Measure(func() (int64, error) { return fl.Run(ctx, n) })
}

// StoreAppend is persist.Store.Append of 64-byte records to one topic
// from pubs goroutines, synced (default) or Buffered.
func StoreAppend(mode string) Writer {
	return Writer{
		Name: "courier-append", Mode: mode,
		Note: "persist.Store.Append, one topic",
		Open: func(dir string, pubs int) (WriteFlow, error) {
			st, err := persist.Open(dir, storeOpts(mode)...)
			if err != nil {
				return nil, err
			}
			rec := bus.Record{Time: time.Now(), Data: RecordData()}
			return &funcFlow{pubs: pubs, close: st.Close, send: func(ctx context.Context, p, i int) error {
				_, err := st.Append(ctx, "bench.persist", rec)
				return err
			}}, nil
		},
	}
}

// PersistedRecord is the value of the bus-level persisted publish: about
// 64 bytes as JSON.
type PersistedRecord struct {
	ID   int    `json:"id"`
	Body string `json:"body"`
}

// BusPublish is a typed topic's Publish on a bus whose store is persist
// (the value encoded to JSON once, appended, delivered to no one).
func BusPublish(mode string) Writer {
	return Writer{
		Name: "courier-publish", Mode: mode,
		Note: "bus.Topic.Publish on a bus.WithStore(persist) bus",
		Open: func(dir string, pubs int) (WriteFlow, error) {
			st, err := persist.Open(dir, storeOpts(mode)...)
			if err != nil {
				return nil, err
			}
			b, err := bus.New(bus.WithStore(st))
			if err != nil {
				st.Close()
				return nil, err
			}
			tp, err := bus.NewTopic[PersistedRecord](b, "bench.persist")
			if err != nil {
				b.Close()
				st.Close()
				return nil, err
			}
			body := string(RecordData()[:44])
			return &funcFlow{pubs: pubs, close: func() error { return errors.Join(b.Close(), st.Close()) },
				send: func(ctx context.Context, p, i int) error {
					_, err := tp.Publish(ctx, PersistedRecord{ID: i, Body: body})
					return err
				}}, nil
		},
	}
}

func storeOpts(mode string) []persist.Option {
	if mode == Buffered {
		return []persist.Option{persist.Buffered()}
	}
	return nil
}

// funcFlow runs pubs publishers calling send.
type funcFlow struct {
	pubs  int
	send  func(ctx context.Context, p, i int) error
	close func() error
}

func (f *funcFlow) Run(ctx context.Context, n int) (int64, error) {
	bg := context.Background()
	return Publish(ctx, f.pubs, n, func(p, i int) error { return f.send(bg, p, i) })
}

func (f *funcFlow) Close() error { return f.close() }

// FuncFlow makes a WriteFlow of pubs publishers that each call send for
// their records, and close.
func FuncFlow(pubs int, send func(ctx context.Context, p, i int) error, close func() error) WriteFlow {
	return &funcFlow{pubs: pubs, send: send, close: close}
}

// BadgerOptions are the Badger options persist uses (persist/store.go,
// copied: they are not exported), for the raw Badger baselines.
func BadgerOptions(dir string) badger.Options {
	o := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithSyncWrites(false).
		WithNumVersionsToKeep(1).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(8 << 20).
		WithMemTableSize(8 << 20).
		WithNumMemtables(3).
		WithBaseTableSize(2 << 20).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithValueThreshold(1 << 10).
		WithValueLogFileSize(64 << 20)
	o.TableSizeMultiplier = 1
	return o
}

// logKey is a key shaped like persist's log keys: kind, topic, big-endian
// sequence number.
func logKey(topic string, seq uint64) []byte {
	b := append([]byte("l/"), topic...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, seq)
}

// rawValue is a value the size of persist's encoding of a 64-byte record
// (a 16-byte header: version, time, lengths; then the data).
func rawValue() []byte {
	return append(bytes.Repeat([]byte{1}, 16), RecordData()...)
}

// RawWriteBatch is the baseline of persisted publish: Badger's own
// WriteBatch with persist's options, no sync, one writer, the same keys
// and value sizes, flushed at the end of the run.
func RawWriteBatch() Writer {
	return Writer{
		Name: "badger-writebatch", Mode: Buffered, Baseline: true,
		Note: "raw Badger WriteBatch, persist's options, one writer, Flush at the end",
		Open: func(dir string, _ int) (WriteFlow, error) {
			db, err := badger.Open(BadgerOptions(dir))
			if err != nil {
				return nil, err
			}
			return &wbFlow{db: db, val: rawValue()}, nil
		},
	}
}

type wbFlow struct {
	db  *badger.DB
	val []byte
	seq uint64
}

func (f *wbFlow) Run(ctx context.Context, n int) (int64, error) {
	wb := f.db.NewWriteBatch()
	defer wb.Cancel()
	var i int
	for i = 0; i < n; i++ {
		if i&255 == 255 && ctx.Err() != nil {
			break
		}
		f.seq++
		if err := wb.Set(logKey("bench.persist", f.seq), f.val); err != nil {
			return int64(i), err
		}
	}
	return int64(i), wb.Flush()
}

func (f *wbFlow) Close() error { return f.db.Close() }

// Replayer is one implementation of the replay scenario: a topic of n
// records read from the start.
type Replayer struct {
	Name     string
	Note     string
	Baseline bool
	// Open fills a fresh store in dir with n 64-byte records (not
	// measured).
	Open func(dir string, n int) (ReplayFlow, error)
}

// ReplayFlow reads the whole topic once per Run.
type ReplayFlow interface {
	Run(ctx context.Context) (read int64, err error)
	Close() error
}

// RunReplay measures one read of the whole topic, stopped at d.
func RunReplay(fl ReplayFlow, d time.Duration) (Metrics, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return Measure(func() (int64, error) { return fl.Run(ctx) })
}

// fill appends n records from 64 goroutines.
func fill(n int, appendOne func(ctx context.Context) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 64)
	for g := range 64 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := appendOne(context.Background()); err != nil {
					errs[g] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// StoreReplay is persist.Store.Read from the first record, 1000 records
// per call, as a consumer catching up does.
func StoreReplay() Replayer {
	return Replayer{
		Name: "courier-read", Note: "persist.Store.Read, 1000 records per call",
		Open: func(dir string, n int) (ReplayFlow, error) {
			st, err := persist.Open(dir, persist.Buffered())
			if err != nil {
				return nil, err
			}
			rec := bus.Record{Time: time.Now(), Data: RecordData()}
			if err := fill(n, func(ctx context.Context) error {
				_, err := st.Append(ctx, "bench.replay", rec)
				return err
			}); err != nil {
				st.Close()
				return nil, err
			}
			return &storeReplay{st: st, n: n}, nil
		},
	}
}

type storeReplay struct {
	st  *persist.Store
	n   int
	buf []bus.Record
}

func (f *storeReplay) Run(ctx context.Context) (int64, error) {
	var read int64
	for from := uint64(1); from <= uint64(f.n); {
		if ctx.Err() != nil {
			break
		}
		var err error
		f.buf, err = f.st.Read(ctx, "bench.replay", from, 1000, f.buf[:0])
		if err != nil {
			return read, err
		}
		if len(f.buf) == 0 {
			return read, fmt.Errorf("bench: replay stopped at %d of %d", from, f.n)
		}
		read += int64(len(f.buf))
		from += uint64(len(f.buf))
	}
	return read, nil
}

func (f *storeReplay) Close() error { return f.st.Close() }

// BusReplay is a bus subscription that starts at the first record of a
// persisted topic (bus.StartFirst()), handed the decoded Go values.
func BusReplay() Replayer {
	return Replayer{
		Name: "courier-subscribe", Note: "bus subscription from the first record, values decoded from the store",
		Open: func(dir string, n int) (ReplayFlow, error) {
			st, err := persist.Open(dir, persist.Buffered())
			if err != nil {
				return nil, err
			}
			b, err := bus.New(bus.WithStore(st))
			if err != nil {
				st.Close()
				return nil, err
			}
			tp, err := bus.NewTopic[PersistedRecord](b, "bench.replay")
			if err == nil {
				body := string(RecordData()[:44])
				err = fill(n, func(ctx context.Context) error {
					_, err := tp.Publish(ctx, PersistedRecord{ID: 1, Body: body})
					return err
				})
			}
			if err != nil {
				b.Close()
				st.Close()
				return nil, err
			}
			return &busReplay{b: b, st: st, tp: tp, n: n}, nil
		},
	}
}

type busReplay struct {
	b  *bus.Bus
	st *persist.Store
	tp *bus.Topic[PersistedRecord]
	n  int
}

func (f *busReplay) Run(ctx context.Context) (int64, error) {
	sinks := NewSinks(1)
	sub, err := f.tp.Subscribe(func(context.Context, bus.Message[PersistedRecord]) error {
		sinks.Add(0)
		return nil
	}, bus.StartFirst())
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	d := DrainTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	return sinks.Wait(int64(f.n), d), nil
}

func (f *busReplay) Close() error { return errors.Join(f.b.Close(), f.st.Close()) }

// RawReplay is the baseline of replay: a Badger iterator over the same
// keys and value sizes, with persist's options, copying each value.
func RawReplay() Replayer {
	return Replayer{
		Name: "badger-iterator", Baseline: true, Note: "raw Badger iterator over the log keys, values copied",
		Open: func(dir string, n int) (ReplayFlow, error) {
			db, err := badger.Open(BadgerOptions(dir))
			if err != nil {
				return nil, err
			}
			val := rawValue()
			wb := db.NewWriteBatch()
			for i := 1; i <= n; i++ {
				if err := wb.Set(logKey("bench.replay", uint64(i)), val); err != nil {
					wb.Cancel()
					db.Close()
					return nil, err
				}
			}
			if err := wb.Flush(); err != nil {
				db.Close()
				return nil, err
			}
			return &rawReplay{db: db}, nil
		},
	}
}

type rawReplay struct {
	db  *badger.DB
	buf []byte
}

func (f *rawReplay) Run(ctx context.Context) (int64, error) {
	var read int64
	err := f.db.View(func(txn *badger.Txn) error {
		prefix := append([]byte("l/bench.replay"), 0)
		// Values under 1 KiB sit in the LSM tree: nothing to prefetch.
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			if read&1023 == 0 && ctx.Err() != nil {
				break
			}
			var err error
			if f.buf, err = it.Item().ValueCopy(f.buf[:0]); err != nil {
				return err
			}
			read++
		}
		return nil
	})
	return read, err
}

func (f *rawReplay) Close() error { return f.db.Close() }
