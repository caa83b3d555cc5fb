package persist_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/bus/bustest"
	"github.com/courierbus/courier/persist"
)

var _ bus.Store = (*persist.Store)(nil)

// open opens a store in a new temporary directory and closes it when the
// test ends.
func open(t testing.TB, opts ...persist.Option) (*persist.Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := persist.Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func TestConformance(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts []persist.Option
	}{
		{"synced", nil},
		{"buffered", []persist.Option{persist.Buffered()}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			dirs := map[bus.Store]string{}
			openAt := func(t *testing.T, dir string, opts ...persist.Option) bus.Store {
				s, err := persist.Open(dir, append(opts, mode.opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				dirs[s] = dir
				return s
			}
			closeStore := func(t *testing.T, s bus.Store) {
				if err := s.(*persist.Store).Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
			bustest.TestStore(t, bustest.StoreHarness{
				New:   func(t *testing.T) bus.Store { return openAt(t, t.TempDir()) },
				Close: closeStore,
				Reopen: func(t *testing.T, s bus.Store) bus.Store {
					closeStore(t, s)
					return openAt(t, dirs[s])
				},
				NewRetaining: func(t *testing.T, n int) bus.Store {
					return openAt(t, t.TempDir(), persist.Retain(persist.Limits{Count: int64(n)}))
				},
			})
		})
	}
}

func TestOpenErrors(t *testing.T) {
	t.Run("locked", func(t *testing.T) {
		_, dir := open(t)
		s2, err := persist.Open(dir)
		if !errors.Is(err, persist.ErrLocked) {
			if s2 != nil {
				s2.Close()
			}
			t.Fatalf("second Open: %v, want ErrLocked", err)
		}
	})
	t.Run("released after close", func(t *testing.T) {
		s, dir := open(t)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2, err := persist.Open(dir)
		if err != nil {
			t.Fatalf("Open after Close: %v", err)
		}
		s2.Close()
	})
	t.Run("not a store", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := persist.Open(dir); !errors.Is(err, persist.ErrNotStore) {
			t.Fatalf("Open of a foreign dir: %v, want ErrNotStore", err)
		}
		if names, _ := os.ReadDir(dir); len(names) != 1 {
			t.Fatalf("Open wrote into a foreign dir: %d entries", len(names))
		}
	})
	t.Run("a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "f")
		os.WriteFile(file, nil, 0o644)
		if _, err := persist.Open(file); !errors.Is(err, persist.ErrNotStore) {
			t.Fatalf("Open of a file: %v, want ErrNotStore", err)
		}
	})
	t.Run("missing dir is created", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b")
		s, err := persist.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	})
	t.Run("bad option", func(t *testing.T) {
		for _, o := range []persist.Option{
			persist.MaxRecordSize(0),
			persist.Retain(persist.Limits{Count: -1}),
			persist.RetainTopics("", persist.Limits{Count: 1}),
			persist.RetentionInterval(0),
		} {
			s, err := persist.Open(t.TempDir(), o)
			if !errors.Is(err, bus.ErrInvalidOption) {
				t.Errorf("Open with %#v: %v, want ErrInvalidOption", o, err)
			}
			if s != nil {
				s.Close()
			}
		}
	})
}

func TestTooLarge(t *testing.T) {
	s, _ := open(t, persist.MaxRecordSize(1000))
	ctx := context.Background()
	_, err := s.Append(ctx, "big", bus.Record{Time: time.Now(), Data: make([]byte, 1000)})
	if !errors.Is(err, persist.ErrTooLarge) {
		t.Fatalf("Append of a large record: %v, want ErrTooLarge", err)
	}
	seq, err := s.Append(ctx, "big", bus.Record{Time: time.Now(), Data: make([]byte, 900)})
	if err != nil || seq != 1 {
		t.Fatalf("Append after a refused one = %d, %v; want 1, nil", seq, err)
	}
}

func TestUseAfterClose(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, "t", bus.Record{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v, want nil", err)
	}
	for name, call := range map[string]func() error{
		"Topic":          func() error { _, err := s.Topic(ctx, "t"); return err },
		"Append":         func() error { _, err := s.Append(ctx, "t", bus.Record{}); return err },
		"Read":           func() error { _, err := s.Read(ctx, "t", 1, 1, nil); return err },
		"SeqAt":          func() error { _, err := s.SeqAt(ctx, "t", time.Now()); return err },
		"Consumer":       func() error { _, _, err := s.Consumer(ctx, "t", "d"); return err },
		"SaveConsumer":   func() error { return s.SaveConsumer(ctx, "t", "d", bus.ConsumerState{}) },
		"DeleteConsumer": func() error { return s.DeleteConsumer(ctx, "t", "d") },
	} {
		if err := call(); !errors.Is(err, bus.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

func TestStatsAndOnCommit(t *testing.T) {
	var mu sync.Mutex
	var infos []persist.CommitInfo
	st, err := persist.Open(t.TempDir(), persist.OnCommit(func(ci persist.CommitInfo) {
		mu.Lock()
		infos = append(infos, ci)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	before := st.Stats()
	for i := range 5 {
		if _, err := st.Append(ctx, "s", bus.Record{Time: time.Now(), Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	after := st.Stats()
	mu.Lock()
	defer mu.Unlock()
	var ops int
	for _, ci := range infos {
		ops += ci.Ops
		if ci.Duration <= 0 || ci.Bytes <= 0 {
			t.Fatalf("commit info %+v: want a duration and a size", ci)
		}
	}
	if got := after.Ops - before.Ops; got != 5 || uint64(ops) < 5 {
		t.Fatalf("Stats counted %d ops, OnCommit %d; want 5 appends", got, ops)
	}
	if after.Batches-before.Batches != 5 || after.Failed {
		t.Fatalf("stats = %+v, want 5 more batches for 5 sequential appends, not failed", after)
	}
}

// TestOpenAfterCrashLeftEmptyLog: a crash between Badger creating a
// memtable log or a value log and writing to it leaves a zero-byte file,
// which Badger alone refuses to open. The store opens and keeps its
// records, and goes on writing.
func TestOpenAfterCrashLeftEmptyLog(t *testing.T) {
	for _, name := range []string{"00099.mem", "000099.vlog"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			st, err := persist.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Append(ctx, "t", bus.Record{Time: time.Now(), Data: []byte("kept")}); err != nil {
				t.Fatal(err)
			}
			st.Close()
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			st, err = persist.Open(dir)
			if err != nil {
				t.Fatalf("Open with an empty log left by a crash: %v", err)
			}
			defer st.Close()
			if _, err := st.Append(ctx, "t", bus.Record{Time: time.Now(), Data: []byte("more")}); err != nil {
				t.Fatal(err)
			}
			recs, err := st.Read(ctx, "t", 1, 10, nil)
			if err != nil || len(recs) != 2 || string(recs[0].Data) != "kept" {
				t.Fatalf("after reopen: %d records, %v", len(recs), err)
			}
		})
	}
}
