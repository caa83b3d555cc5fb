//go:build linux

package lazyfs

import (
	"errors"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// Badger runs on the mount in the test process: flock, truncate, writable
// shared mappings, msync and fsync all go through the file system. Badger's
// Close retries a failed flush for ever, hence ContinueAfterCut.
func TestBadgerSurvivesCut(t *testing.T) {
	f := Mount(t, "", RulePOSIX, ContinueAfterCut())
	open := func() *badger.DB {
		t.Helper()
		db, err := badger.Open(badger.DefaultOptions(f.Dir()).WithLogger(nil).WithSyncWrites(true))
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open()
	for i := range 100 {
		err := db.Update(func(txn *badger.Txn) error {
			return txn.Set(fmt.Appendf(nil, "k%03d", i), fmt.Appendf(nil, "v%03d", i))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	f.Cut()
	// Written after the cut: Badger is told it is synced, and it is lost.
	err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("late"), []byte("x")) })
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Restart(); err != nil {
		t.Fatal(err)
	}
	if s := f.Stats(); s.FsyncsAfterCut == 0 || s.DroppedPages == 0 {
		t.Fatalf("stats: got %+v, want fsyncs after the cut and dropped pages", s)
	}
	db = open()
	defer db.Close()
	err = db.View(func(txn *badger.Txn) error {
		for i := range 100 {
			item, err := txn.Get(fmt.Appendf(nil, "k%03d", i))
			if err != nil {
				return fmt.Errorf("k%03d: %w", i, err)
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if string(v) != fmt.Sprintf("v%03d", i) {
				return fmt.Errorf("k%03d: got %q", i, v)
			}
		}
		if _, err := txn.Get([]byte("late")); !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("late: got %v, want ErrKeyNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
