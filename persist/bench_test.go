package persist

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/courierbus/courier/bus"
)

// benchRecord is the record the write benchmarks store: 64 bytes of data
// unless a size is given.
func benchRecord(size ...int) bus.Record {
	n := 64
	if len(size) > 0 {
		n = size[0]
	}
	data := make([]byte, n)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	return bus.Record{Time: time.Now(), Data: data}
}

// BenchmarkAppend appends records (64 bytes of data, or 1500: more than a
// KiB, the size that once went to Badger's value log) to one topic from a
// fixed number of concurrent publishers, which split b.N between them.
func BenchmarkAppend(b *testing.B) {
	for _, tc := range []struct {
		mode       string
		opts       []Option
		publishers int
		size       int
	}{
		{"synced", nil, 1, 64},
		{"synced", nil, 16, 64},
		{"synced", nil, 64, 64},
		{"synced", nil, 1, 1500},
		{"synced", nil, 16, 1500},
		{"synced", nil, 64, 1500},
		{"buffered", []Option{Buffered()}, 1, 64},
		{"buffered", []Option{Buffered()}, 64, 64},
	} {
		name := fmt.Sprintf("%s/publishers=%d", tc.mode, tc.publishers)
		if tc.size != 64 {
			name += fmt.Sprintf("/size=%d", tc.size)
		}
		b.Run(name, func(b *testing.B) {
			s, err := Open(b.TempDir(), tc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			rec := benchRecord(tc.size)
			ctx := context.Background()
			b.ReportAllocs()
			var next atomic.Int64
			var wg sync.WaitGroup
			batches := s.batches.Load()
			b.ResetTimer()
			start := time.Now()
			for range tc.publishers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := s.Append(ctx, "bench", rec); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
			b.ReportMetric(float64(b.N)/float64(s.batches.Load()-batches), "records/batch")
		})
	}
}

// BenchmarkRawWriteBatch is the baseline for BenchmarkAppend: Badger's own
// WriteBatch, with the store's Badger options and no sync, writing the
// same keys and encoded records that Append writes.
func BenchmarkRawWriteBatch(b *testing.B) {
	cfg := defaultConfig()
	db, err := badger.Open(badgerOptions(b.TempDir(), &cfg))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rec := benchRecord()
	val := appendRecord(nil, &rec)
	b.ReportAllocs()
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	seq := uint64(0)
	start := time.Now()
	for b.Loop() {
		seq++
		if err := wb.Set(appendLogKey(nil, "bench", seq), val); err != nil {
			b.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(seq)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkReplay reads a 100,000-record topic from the start, 1000
// records per Read, as a consumer catching up would.
func BenchmarkReplay(b *testing.B) {
	const n, chunk = 100_000, 1000
	s, err := Open(b.TempDir(), Buffered())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	rec := benchRecord()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 64 {
		wg.Go(func() {
			for next.Add(1) <= n {
				if _, err := s.Append(ctx, "replay", rec); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportAllocs()
	buf := make([]bus.Record, 0, chunk)
	records := 0
	start := time.Now()
	for b.Loop() {
		for from := uint64(1); from <= n; from += chunk {
			buf, err = s.Read(ctx, "replay", from, chunk, buf[:0])
			if err != nil || len(buf) != chunk {
				b.Fatalf("Read from %d = %d records, %v", from, len(buf), err)
			}
			records += len(buf)
		}
	}
	b.ReportMetric(float64(records)/time.Since(start).Seconds(), "records/s")
}
