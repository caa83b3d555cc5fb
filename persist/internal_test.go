package persist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/courierbus/courier/bus"
)

func mustOpen(t *testing.T, dir string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func appendData(t *testing.T, s *Store, topic string, n int, at time.Time) {
	t.Helper()
	for i := range n {
		if _, err := s.Append(context.Background(), topic, bus.Record{Time: at, Data: fmt.Appendf(nil, "%s-%d", topic, i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// rawUpdate opens the closed store's directory with Badger directly and
// runs f in a transaction.
func rawUpdate(t *testing.T, dir string, f func(txn *badger.Txn) error) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(f); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptData(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	ctx := context.Background()
	appendData(t, s, "a", 4, time.Now())
	appendData(t, s, "b", 2, time.Now())
	appendData(t, s, "c", 1, time.Now())
	if err := s.SaveConsumer(ctx, "a", "d", bus.ConsumerState{AckFloor: 1}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	rawUpdate(t, dir, func(txn *badger.Txn) error {
		for _, kv := range [][2][]byte{
			{appendLogKey(nil, "a", 2), []byte("garbage")},
			{consumerKey("a", "d"), []byte{consumerV1, 1}},
			{metaKey("c"), []byte("garbage")},
		} {
			if err := txn.Set(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return txn.Delete(appendLogKey(nil, "b", 1))
	})

	s = mustOpen(t, dir)
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Read over a garbage record", func() error { _, err := s.Read(ctx, "a", 1, 10, nil); return err }},
		{"Read over a missing record", func() error { _, err := s.Read(ctx, "b", 1, 10, nil); return err }},
		{"Consumer with a bad value", func() error { _, _, err := s.Consumer(ctx, "a", "d"); return err }},
		{"Topic with bad metadata", func() error { _, err := s.Topic(ctx, "c"); return err }},
		{"Append with bad metadata", func() error { _, err := s.Append(ctx, "c", bus.Record{}); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), "key") {
				t.Errorf("error %q does not name the key", err)
			}
		})
	}
	// Everything around the bad keys still works.
	if recs, err := s.Read(ctx, "a", 3, 10, nil); err != nil || len(recs) != 2 {
		t.Fatalf("Read past the bad record = %d, %v; want 2 records", len(recs), err)
	}
	if recs, err := s.Read(ctx, "b", 2, 10, nil); err != nil || len(recs) != 1 {
		t.Fatalf("Read past the missing record = %d, %v; want 1 record", len(recs), err)
	}
	if seq, err := s.Append(ctx, "a", bus.Record{}); err != nil || seq != 5 {
		t.Fatalf("Append to the topic with a bad record = %d, %v; want 5", seq, err)
	}
	if seq, err := s.Append(ctx, "fresh", bus.Record{}); err != nil || seq != 1 {
		t.Fatalf("Append to another topic = %d, %v; want 1", seq, err)
	}
}

var errInjected = errors.New("injected commit failure")

// TestFailedBatch fails some batches while many callers append: each
// caller in a failed batch gets the error, and the sequence numbers the
// batch would have used are given to later records, leaving no gap.
func TestFailedBatch(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Buffered())
	ctx := context.Background()
	stop := make(chan struct{})
	var injector sync.WaitGroup
	injector.Go(func() {
		fail := func() error { return errInjected }
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				s.failNext.Store(&fail)
			}
		}
	})
	var mu sync.Mutex
	acked := map[uint64]string{}
	failed := 0
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 100 {
				data := fmt.Sprintf("w%d-%d", w, i)
				seq, err := s.Append(ctx, "f", bus.Record{Data: []byte(data)})
				mu.Lock()
				switch {
				case errors.Is(err, errInjected):
					failed++
				case err != nil:
					t.Error(err)
				default:
					if prev, dup := acked[seq]; dup {
						t.Errorf("seq %d given to %s and %s", seq, prev, data)
					}
					acked[seq] = data
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	injector.Wait()
	if failed == 0 {
		t.Fatal("no batch failed; the test injected nothing")
	}
	recs, err := s.Read(ctx, "f", 1, 10_000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(acked) {
		t.Fatalf("log holds %d records, %d appends succeeded (%d failed)", len(recs), len(acked), failed)
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) || string(r.Data) != acked[r.Seq] {
			t.Fatalf("record %d = (%d, %q), want (%d, %q)", i, r.Seq, r.Data, i+1, acked[uint64(i+1)])
		}
	}
	t.Logf("%d appends succeeded, %d failed with their batch", len(acked), failed)
}

// TestFailedSync checks that a failed sync fails its batch and every
// later write, while reads go on, and that reopening recovers.
func TestFailedSync(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	appendData(t, s, "s", 3, time.Now())
	errSync := errors.New("injected sync failure")
	fail := func() error { return errSync }
	s.failSync.Store(&fail)
	if _, err := s.Append(ctx, "s", bus.Record{Data: []byte("unsure")}); !errors.Is(err, errSync) {
		t.Fatalf("Append in the failed batch: %v, want the sync error", err)
	}
	if _, err := s.Append(ctx, "s", bus.Record{}); !errors.Is(err, errSync) {
		t.Fatalf("Append after a failed sync: %v, want the sync error", err)
	}
	if err := s.SaveConsumer(ctx, "s", "d", bus.ConsumerState{}); !errors.Is(err, errSync) {
		t.Fatalf("SaveConsumer after a failed sync: %v, want the sync error", err)
	}
	if recs, err := s.Read(ctx, "s", 1, 10, nil); err != nil || len(recs) != 3 {
		t.Fatalf("Read after a failed sync = %d records, %v; want the 3 acknowledged", len(recs), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The failed batch was committed before its sync failed, so it may be
	// there after reopening: an error from Append means "not known to be
	// durable", never "certainly absent". What matters is no gap.
	s = mustOpen(t, dir)
	seq, err := s.Append(ctx, "s", bus.Record{})
	if err != nil || (seq != 4 && seq != 5) {
		t.Fatalf("Append after reopening = %d, %v; want 4 or 5", seq, err)
	}
	if recs, err := s.Read(ctx, "s", 1, 10, nil); err != nil || uint64(len(recs)) != seq {
		t.Fatalf("Read after reopening = %d records, %v; want %d", len(recs), err, seq)
	}
}

// TestGroupCommit checks that concurrent appends share batches.
func TestGroupCommit(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	const writers, each = 64, 10
	before := s.batches.Load()
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() { appendData(t, s, "g", each, time.Now()) })
	}
	wg.Wait()
	batches := s.batches.Load() - before
	if batches > writers*each/4 {
		t.Fatalf("%d records took %d batches, want at most a quarter as many", writers*each, batches)
	}
	t.Logf("%d synced appends from %d goroutines in %d batches", writers*each, writers, batches)
}

func TestCancelWhileQueued(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	// Hold the writer: a failing batch blocks in the hook until released.
	release := make(chan struct{})
	entered := make(chan struct{})
	hold := func() error { close(entered); <-release; return nil }
	s.failNext.Store(&hold)
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := s.Append(ctx, "q", bus.Record{Data: []byte("first")}); err != nil {
			t.Error(err)
		}
	})
	<-entered
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	wg.Go(func() {
		_, err := s.Append(cctx, "q", bus.Record{Data: []byte("cancelled")})
		errc <- err
	})
	// The second append is queued behind the held batch; cancel it there.
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("queued Append after cancel: %v, want context.Canceled", err)
	}
	close(release)
	wg.Wait()
	st, err := s.Topic(ctx, "q")
	if err != nil || st.Last != 1 {
		t.Fatalf("state = %+v, %v; want Last 1 (the cancelled record not written)", st, err)
	}
}

func TestRetentionBackground(t *testing.T) {
	ctx := context.Background()
	old := time.Now().Add(-2 * time.Hour)
	recSize := uint64(len(appendRecord(nil, &bus.Record{Time: old, Data: []byte("bytes-0")})))
	s := mustOpen(t, t.TempDir(),
		Buffered(),
		RetentionInterval(5*time.Millisecond),
		Retain(Limits{Count: 100}),
		RetainTopics("age", Limits{Age: time.Hour}),
		RetainTopics("bytes", Limits{Bytes: int64(3 * recSize)}),
		RetainTopics("chat", Limits{Count: 2}),
		RetainTopics("chat.vip", Limits{}),
	)
	appendData(t, s, "age", 5, old)
	appendData(t, s, "age", 3, time.Now())
	appendData(t, s, "bytes", 10, old)
	for _, topic := range []string{"chat.room1", "chat.vip.x", "chatter"} {
		appendData(t, s, topic, 5, time.Now())
	}
	for _, tc := range []struct {
		topic       string
		first, last uint64
	}{
		{"age", 6, 8},
		{"bytes", 8, 10},
		{"chat.room1", 4, 5},
		{"chat.vip.x", 1, 5},
		{"chatter", 1, 5},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			deadline := time.Now().Add(10 * time.Second)
			for {
				st, _, err := s.state(tc.topic)
				if err != nil {
					t.Fatal(err)
				}
				if st.first == tc.first {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("stored first = %d, want %d", st.first, tc.first)
				}
				time.Sleep(5 * time.Millisecond)
			}
			ts, err := s.Topic(ctx, tc.topic)
			if err != nil || ts.First != tc.first || ts.Last != tc.last {
				t.Fatalf("Topic = %+v, %v; want First %d, Last %d", ts, err, tc.first, tc.last)
			}
			if tc.first > 1 {
				if _, err := s.Read(ctx, tc.topic, tc.first-1, 10, nil); !errors.Is(err, bus.ErrNotCovered) {
					t.Fatalf("Read below First: %v, want ErrNotCovered", err)
				}
			}
			recs, err := s.Read(ctx, tc.topic, tc.first, 100, nil)
			if err != nil || uint64(len(recs)) != tc.last-tc.first+1 {
				t.Fatalf("Read from First = %d records, %v", len(recs), err)
			}
			// The dropped records are gone from Badger, not only hidden.
			err = s.db.View(func(txn *badger.Txn) error {
				for seq := uint64(1); seq < tc.first; seq++ {
					if _, err := txn.Get(appendLogKey(nil, tc.topic, seq)); !errors.Is(err, badger.ErrKeyNotFound) {
						return fmt.Errorf("record %d: %v, want ErrKeyNotFound", seq, err)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	if st, _, _ := s.state("bytes"); st.bytes != 3*recSize {
		t.Errorf("bytes topic holds %d bytes, want %d", st.bytes, 3*recSize)
	}
}

func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	h := slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug})
	s, err := Open(t.TempDir(), WithLogger(slog.New(h)))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "component=badger") {
		t.Fatalf("no Badger log reached the logger; got:\n%s", buf.String())
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// errorLog keeps the messages of log records at min and above (the zero
// min is slog.LevelInfo; tests set LevelError or LevelWarn).
type errorLog struct {
	slog.Handler
	min    slog.Level
	mu     sync.Mutex
	errors []string
}

func (h *errorLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *errorLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= h.min {
		h.mu.Lock()
		h.errors = append(h.errors, r.Message)
		h.mu.Unlock()
	}
	return nil
}

// has reports whether a kept message contains sub.
func (h *errorLog) has(sub string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.ContainsFunc(h.errors, func(m string) bool { return strings.Contains(m, sub) })
}

// TestValueLogGC runs the background pass's value-log collection over
// large records (kept in the value log) that retention dropped.
func TestValueLogGC(t *testing.T) {
	log := &errorLog{Handler: slog.DiscardHandler, min: slog.LevelError}
	s := mustOpen(t, t.TempDir(), Buffered(), WithLogger(slog.New(log)), MaxRecordSize(2<<20),
		Retain(Limits{Count: 10}), RetentionInterval(time.Millisecond))
	ctx := context.Background()
	big := bytes.Repeat([]byte("v"), valueThreshold+100<<10) // in the value log
	for range 200 {
		if _, err := s.Append(ctx, "gc", bus.Record{Data: big}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for st, _, _ := s.state("gc"); st.first != 191; st, _, _ = s.state("gc") {
		if time.Now().After(deadline) {
			t.Fatalf("retention left first at %d, want 191", st.first)
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.collect()
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.errors) > 0 {
		t.Fatalf("errors logged: %q", log.errors)
	}
	if recs, err := s.Read(ctx, "gc", 191, 100, nil); err != nil || len(recs) != 10 || !bytes.Equal(recs[9].Data, big) {
		t.Fatalf("Read after GC = %d records, %v", len(recs), err)
	}
}
