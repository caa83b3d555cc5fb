package persist

import (
	"context"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/courierbus/courier/bus"
)

// Memory profile. Badger's defaults aim at a database server (64 MiB
// memtables, five of them, a 256 MiB block cache); an event log inside
// another program gets by with much less. See [Open] for what it adds up to.
const (
	memTableSize   = 8 << 20
	numMemtables   = 3
	baseTableSize  = 2 << 20
	indexCacheSize = 8 << 20
	// valueThreshold is Badger's largest: a record under a MiB is written
	// with its key in the memtable log, so that one sync makes both
	// durable; larger ones go to the value log (see sync.go).
	valueThreshold = 1 << 20
	valueLogFile   = 64 << 20 // value log file size
)

// Open opens the store in dir, creating dir and an empty store when dir is
// missing or empty.
//
// It fails with an error wrapping [ErrLocked] when another store (in this
// process or another) has dir open, and [ErrNotStore] when dir holds
// something other than a Courier store; an error wrapping
// bus.ErrInvalidOption reports a bad option.
//
// Badger runs with a small-memory profile rather than its server defaults:
// 8 MiB memtables (at most three), 2 MiB tables on every level, values of a
// MiB and more in the value log, no block cache (blocks are not compressed) and an
// 8 MiB index cache. Measured on Linux/amd64 with Go 1.26 (TestRestartLong),
// a store holding a million 64-byte records opens in 10 to 20 ms and adds
// about 8 MiB to the process's resident set, 11 MiB after reading a few
// thousand records. Under a sustained synced write load Badger's memtable
// flushes and compactions build tables in memory, several at once: the
// resident set then peaked at 70 to 170 MiB, of which 30 to 80 MiB were
// file pages of its memory-mapped tables (which the kernel reclaims at
// will) and 25 to 55 MiB live heap. A host that must bound this sets
// GOMEMLIMIT.
//
// Open starts two goroutines, the writer and the retention loop; Close
// stops them.
func Open(dir string, opts ...Option) (*Store, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s, err := open(dir, cfg)
	if err != nil {
		return nil, fmt.Errorf("persist: open %s: %w", dir, err)
	}
	s.w.init(s)
	s.wWG.Add(1)
	go func() { defer s.wWG.Done(); s.w.run() }()
	s.bgWG.Add(1)
	go func() { defer s.bgWG.Done(); s.background() }()
	return s, nil
}

// open takes dir, opens Badger in it and repairs what a crash left (see
// recover.go and session.go), releasing what it took when it fails.
func open(dir string, cfg config) (_ *Store, err error) {
	s := &Store{
		cfg:    cfg,
		ops:    make(chan *op, opQueue),
		stopBG: make(chan struct{}),
		stopW:  make(chan struct{}),
		topics: make(map[string]topicState),
	}
	if s.marker, err = prepareDir(dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if s.dur != nil {
				s.dur.close()
			}
			if s.db != nil {
				s.db.Close()
			}
			s.marker.Close()
		}
	}()
	if err := dropEmptyLogs(dir); err != nil {
		return nil, err
	}
	last, err := readLastRun(dir)
	if err != nil {
		return nil, err
	}
	if last.unclean {
		if err := syncLogs(dir); err != nil {
			return nil, err
		}
	}
	if s.db, err = openBadger(dir, &s.cfg); err != nil {
		if strings.Contains(err.Error(), "Another process is using this Badger database") {
			err = fmt.Errorf("%w: %v", ErrLocked, err)
		}
		return nil, err
	}
	if s.dur, err = openDurability(dir); err != nil {
		return nil, err
	}
	if s.dropped, err = s.recoverTails(last.mayHaveLost(s.cfg.boot())); err != nil {
		return nil, err
	}
	if err := markRunning(dir, &s.cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// badgerOptions returns the Badger options of a store in dir: the
// small-memory profile, with SyncWrites off (see writer.commit).
func badgerOptions(dir string, cfg *config) badger.Options {
	o := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{cfg.logger}).
		WithSyncWrites(false).
		WithNumVersionsToKeep(1).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(indexCacheSize).
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithBaseTableSize(baseTableSize).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithValueThreshold(valueThreshold).
		WithValueLogFileSize(valueLogFile)
	// Tables of one size on every level: a compaction builds its output
	// tables in memory, several at once, so bigger tables on deeper levels
	// mean bigger bursts of heap.
	o.TableSizeMultiplier = 1
	return o
}

// Close flushes the appends already accepted, stops the store's goroutines
// and closes Badger, releasing the directory. Calls that begin after Close
// has begun return bus.ErrClosed; calls already running finish first. Close
// may be called more than once; later calls return nil.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.close() })
	return err
}

func (s *Store) close() error {
	s.gate.Lock()
	s.closed = true
	s.gate.Unlock()
	s.inflight.Wait() // calls that began before finish, their appends flushed
	close(s.stopBG)
	s.bgWG.Wait()
	close(s.stopW) // nothing can queue an op any more
	s.wWG.Wait()
	err := s.db.Close()
	if err == nil {
		err = clearRunning(s.dur.dir)
	}
	if derr := s.dur.close(); err == nil {
		err = derr
	}
	if merr := s.marker.Close(); err == nil {
		err = merr // releases the directory lock
	}
	if err != nil {
		return fmt.Errorf("persist: close: %w", err)
	}
	return nil
}

// begin registers an operation; it reports false after Close has begun.
// A true result must be paired with end.
func (s *Store) begin() bool {
	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.closed {
		return false
	}
	s.inflight.Add(1)
	return true
}

func (s *Store) end() { s.inflight.Done() }

// enter begins an operation and checks ctx, returning the error the
// operation should fail with, if any.
func (s *Store) enter(ctx context.Context) error {
	if !s.begin() {
		return bus.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		s.end()
		return err
	}
	return nil
}
