package persist

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/courierbus/courier/bus"
)

// TestTornTailDropped: records at the end of a topic's log that cannot be
// read (their bytes lost, or not there at all) are dropped at Open, with a
// warning and a count, and the topic gets a new epoch; it opens, reads
// contiguously to its new last record and appends after it. A bad record
// in the middle is not a tail and stays an error of the reads over it.
func TestTornTailDropped(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := mustOpen(t, dir)
	appendData(t, s, "torn", 10, time.Now())
	appendData(t, s, "gone", 3, time.Now())
	appendData(t, s, "whole", 4, time.Now())
	appendData(t, s, "mid", 5, time.Now())
	before := map[string]bus.TopicState{}
	for _, topic := range []string{"torn", "gone", "whole", "mid"} {
		before[topic], _ = s.Topic(ctx, topic)
	}
	s.Close()
	rawUpdate(t, dir, func(txn *badger.Txn) error {
		for _, k := range [][]byte{appendLogKey(nil, "torn", 8), appendLogKey(nil, "torn", 10), appendLogKey(nil, "mid", 2)} {
			if err := txn.Set(k, []byte{recordV1, 0xff}); err != nil { // cut short
				return err
			}
		}
		if err := txn.Delete(appendLogKey(nil, "torn", 9)); err != nil {
			return err
		}
		for seq := uint64(1); seq <= 3; seq++ {
			if err := txn.Delete(appendLogKey(nil, "gone", seq)); err != nil {
				return err
			}
		}
		return nil
	})

	log := &errorLog{Handler: slog.DiscardHandler, min: slog.LevelWarn}
	s = mustOpen(t, dir, WithLogger(slog.New(log)))
	if got := s.Stats().Dropped; got != 6 {
		t.Errorf("Stats().Dropped = %d, want 6", got)
	}
	if !log.has("unreadable at the end") {
		t.Errorf("no warning about the dropped records; logged %q", log.errors)
	}
	for _, tc := range []struct {
		topic    string
		last     uint64
		newEpoch bool
	}{
		{"torn", 7, true},
		{"gone", 0, true},
		{"whole", 4, false},
		{"mid", 5, false},
	} {
		ts, err := s.Topic(ctx, tc.topic)
		if err != nil {
			t.Fatalf("Topic(%q): %v", tc.topic, err)
		}
		if ts.Last != tc.last {
			t.Errorf("%s: last %d, want %d", tc.topic, ts.Last, tc.last)
		}
		if changed := ts.Epoch != before[tc.topic].Epoch; changed != tc.newEpoch {
			t.Errorf("%s: epoch changed %v, want %v", tc.topic, changed, tc.newEpoch)
		}
	}
	recs, err := s.Read(ctx, "torn", 1, 100, nil)
	if err != nil || len(recs) != 7 {
		t.Fatalf("Read torn = %d records, %v; want 7", len(recs), err)
	}
	if seq, err := s.Append(ctx, "torn", bus.Record{Data: []byte("next")}); err != nil || seq != 8 {
		t.Fatalf("Append after the drop = %d, %v; want 8", seq, err)
	}
	if seq, err := s.Append(ctx, "gone", bus.Record{Data: []byte("next")}); err != nil || seq != 1 {
		t.Fatalf("Append to the emptied topic = %d, %v; want 1", seq, err)
	}
	if _, err := s.Read(ctx, "mid", 1, 100, nil); err == nil {
		t.Fatal("Read over a bad record in the middle succeeded")
	}
}

// TestBufferedUncleanNewEpoch: a buffered run that did not close before
// the machine booted again may have lost what it acknowledged, so every
// topic gets a new epoch; after a crash of the process alone (same boot),
// a clean close, or a synced run, epochs stay.
func TestBufferedUncleanNewEpoch(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		mode     []Option
		clean    bool
		boot     string
		newEpoch bool
	}{
		{"buffered, crash, reboot", []Option{Buffered()}, false, "B", true},
		{"buffered, crash, same boot", []Option{Buffered()}, false, "A", false},
		{"buffered, clean close, reboot", []Option{Buffered()}, true, "B", false},
		{"synced, crash, reboot", nil, false, "B", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, append(tc.mode, WithBoot("A"))...)
			if err != nil {
				t.Fatal(err)
			}
			appendData(t, s, "e", 3, time.Now())
			before, _ := s.Topic(ctx, "e")
			running, err := os.ReadFile(filepath.Join(dir, runningName))
			if err != nil {
				t.Fatalf("no running file while open: %v", err)
			}
			s.Close()
			if _, err := os.Stat(filepath.Join(dir, runningName)); !os.IsNotExist(err) {
				t.Fatalf("running file after Close: %v", err)
			}
			if !tc.clean { // what a crash leaves
				if err := os.WriteFile(filepath.Join(dir, runningName), running, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s = mustOpen(t, dir, WithBoot(tc.boot))
			after, err := s.Topic(ctx, "e")
			if err != nil {
				t.Fatal(err)
			}
			if after.Last != 3 {
				t.Errorf("last %d after reopening, want 3", after.Last)
			}
			if changed := after.Epoch != before.Epoch; changed != tc.newEpoch {
				t.Errorf("epoch changed %v, want %v", changed, tc.newEpoch)
			}
		})
	}
}

// TestStatsDiskBytes: the disk sizes Stats reports grow with what is
// written: small records in the LSM, records of a MiB and more in the
// value log.
func TestStatsDiskBytes(t *testing.T) {
	s := mustOpen(t, t.TempDir(), MaxRecordSize(2<<20))
	ctx := context.Background()
	for range 200 {
		if _, err := s.Append(ctx, "small", bus.Record{Data: make([]byte, 4<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(ctx, "big", bus.Record{Data: make([]byte, valueThreshold)}); err != nil {
		t.Fatal(err)
	}
	s.size.at = time.Time{} // measure now
	st := s.Stats()
	if st.LSMBytes < 200*4<<10 {
		t.Errorf("LSMBytes = %d after 800 KiB of small records", st.LSMBytes)
	}
	if st.LogBytes < valueThreshold {
		t.Errorf("LogBytes = %d after a 1 MiB record", st.LogBytes)
	}
}
