package bench_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/courierbus/courier/bench/internal/bench"
)

func inprocImpls() []bench.InProc {
	return []bench.InProc{bench.Channels(), bench.Courier(bench.AtMostOnce), bench.Courier(bench.AtLeastOnce)}
}

// BenchmarkInProc compares, shape by shape, the bus with buffered
// channels; benchstat -col /impl prints them side by side.
func BenchmarkInProc(b *testing.B) {
	for _, sh := range bench.Shapes() {
		for _, im := range inprocImpls() {
			b.Run("shape="+sh.Name+"/impl="+im.Name+"-"+im.Mode, func(b *testing.B) { bench.BenchInProc(b, im, sh) })
		}
	}
}

// BenchmarkRooms: 1000 members in 10 rooms, every publish to one room.
func BenchmarkRooms(b *testing.B) {
	for _, im := range []bench.InProc{bench.Channels(), bench.Courier(bench.AtMostOnce)} {
		b.Run("impl="+im.Name, func(b *testing.B) { bench.BenchInProc(b, im, bench.RoomShape()) })
	}
}

// TestInProcSmoke runs every in-process implementation on every shape
// briefly and checks that everything published was delivered.
func TestInProcSmoke(t *testing.T) {
	for _, sh := range append(bench.Shapes(), bench.RoomShape()) {
		for _, im := range inprocImpls() {
			if sh.Rooms > 0 && im.Mode == bench.AtLeastOnce {
				continue
			}
			fl, err := im.Open(sh)
			if err != nil {
				t.Fatal(err)
			}
			m, err := bench.RunInProc(fl, 2000, 10*time.Second)
			fl.Close()
			if err != nil {
				t.Fatalf("%s %s/%s: %v", sh.Name, im.Name, im.Mode, err)
			}
			if got, want := m[bench.Delivered], float64(2000*sh.Recipients()); got != want {
				t.Errorf("%s %s/%s: delivered %v, want %v", sh.Name, im.Name, im.Mode, got, want)
			}
		}
	}
}

func writers() []bench.Writer {
	return []bench.Writer{bench.RawWriteBatch(), bench.StoreAppend(bench.Synced), bench.StoreAppend(bench.Buffered),
		bench.BusPublish(bench.Synced), bench.BusPublish(bench.Buffered)}
}

// BenchmarkPersistedPublish: 64-byte records from 1, 16 and 64
// publishers, against raw Badger WriteBatch.
func BenchmarkPersistedPublish(b *testing.B) {
	for _, w := range writers() {
		for _, pubs := range []int{1, 16, 64} {
			if w.Baseline && pubs > 1 {
				continue
			}
			b.Run(fmt.Sprintf("mode=%s/publishers=%d/impl=%s", w.Mode, pubs, w.Name), func(b *testing.B) {
				fl, err := w.Open(b.TempDir(), pubs)
				if err != nil {
					b.Fatal(err)
				}
				defer fl.Close()
				b.ResetTimer()
				m, err := bench.RunWrite(fl, b.N, time.Hour)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				bench.ReportMetrics(b, m, bench.MsgsPerSec, bench.CPUPerMsg, bench.AllocsPerMsg)
			})
		}
	}
}

// BenchmarkReplay reads a 100,000-record topic from the start.
func BenchmarkReplay(b *testing.B) {
	for _, r := range []bench.Replayer{bench.RawReplay(), bench.StoreReplay(), bench.BusReplay()} {
		b.Run("impl="+r.Name, func(b *testing.B) {
			fl, err := r.Open(b.TempDir(), 100_000)
			if err != nil {
				b.Fatal(err)
			}
			defer fl.Close()
			b.ResetTimer()
			var read float64
			start := time.Now()
			for b.Loop() {
				m, err := bench.RunReplay(fl, time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				read += m[bench.Delivered]
			}
			b.ReportMetric(read/time.Since(start).Seconds(), "records/s")
		})
	}
}

// TestPersistSmoke writes and replays a little with every implementation.
func TestPersistSmoke(t *testing.T) {
	for _, w := range writers() {
		fl, err := w.Open(t.TempDir(), 4)
		if err != nil {
			t.Fatal(err)
		}
		m, err := bench.RunWrite(fl, 200, 10*time.Second)
		if cerr := fl.Close(); err == nil {
			err = cerr
		}
		if err != nil || m[bench.Delivered] != 200 {
			t.Errorf("%s/%s: wrote %v records, %v", w.Name, w.Mode, m[bench.Delivered], err)
		}
	}
	for _, r := range []bench.Replayer{bench.RawReplay(), bench.StoreReplay(), bench.BusReplay()} {
		fl, err := r.Open(t.TempDir(), 2000)
		if err != nil {
			t.Fatal(err)
		}
		m, err := bench.RunReplay(fl, 10*time.Second)
		fl.Close()
		if err != nil || m[bench.Delivered] != 2000 {
			t.Errorf("%s: read %v records, %v", r.Name, m[bench.Delivered], err)
		}
	}
}

func wsImpls() []bench.WSImpl {
	return []bench.WSImpl{bench.Melody(), bench.CourierWS(), bench.CourierRaw()}
}

// TestWSSmoke broadcasts to a few clients and times a few round trips
// with every WebSocket implementation, each server in a child process.
func TestWSSmoke(t *testing.T) {
	for _, im := range wsImpls() {
		m, err := bench.RunWS(im, bench.WSOptions{Clients: 20, Batch: 8, Messages: 64, ThroughputTime: 5 * time.Second,
			LatencySamples: 5, LatencyTime: 5 * time.Second})
		if err != nil {
			t.Fatalf("%s: %v", im.Name, err)
		}
		if got, want := m[bench.Delivered], float64(20*64); got != want {
			t.Errorf("%s: delivered %v, want %v", im.Name, got, want)
		}
		t.Logf("%s broadcast: %v", im.Name, m)
		m, err = bench.RunRT(im, bench.RTOptions{Trips: 200, Time: 5 * time.Second})
		if errors.Is(err, bench.ErrUnsupported) {
			continue
		}
		if err != nil {
			t.Fatalf("%s round trips: %v", im.Name, err)
		}
		t.Logf("%s round trips: %v", im.Name, m)
	}
}

// TestRestartSmoke fills a small store and reopens it in child processes.
func TestRestartSmoke(t *testing.T) {
	dir := t.TempDir()
	if err := bench.FillRestart(dir, 20_000); err != nil {
		t.Fatal(err)
	}
	for _, what := range []string{"none", "badger", "courier"} {
		m, err := bench.RunReopen(what, dir)
		if err != nil {
			t.Fatal(err)
		}
		if what == "courier" && m[bench.Records] != 20_000 {
			t.Errorf("reopened store holds %v records, want 20000", m[bench.Records])
		}
		t.Logf("%s: %v", what, m)
	}
}

// BenchmarkBroadcast broadcasts to 1000 and 5000 clients (run it with
// -benchtime 1x: each iteration is a whole run, server process included).
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		for _, im := range wsImpls() {
			b.Run(fmt.Sprintf("clients=%d/impl=%s", n, im.Name), func(b *testing.B) {
				var m bench.Metrics
				for b.Loop() {
					var err error
					m, err = bench.RunWS(im, bench.WSOptions{Clients: n, Batch: 32, Messages: 100_000,
						ThroughputTime: 2 * time.Second, LatencySamples: 50, LatencyTime: 3 * time.Second})
					if err != nil {
						b.Fatal(err)
					}
				}
				bench.ReportMetrics(b, m, bench.MsgsPerSec, bench.ServerCPUPerMsg, bench.WritesPerMsg, bench.P50Ms, bench.P99Ms, bench.RSSPerConn, bench.ConnectSec)
			})
		}
	}
}

// BenchmarkRoundTrip times sequential acknowledged round trips of one
// client speaking the wire protocol.
func BenchmarkRoundTrip(b *testing.B) {
	for _, im := range wsImpls() {
		if im.RoundTripper == nil {
			continue
		}
		b.Run("impl="+im.Name, func(b *testing.B) {
			var m bench.Metrics
			for b.Loop() {
				var err error
				if m, err = bench.RunRT(im, bench.RTOptions{Trips: 5000, Time: time.Second}); err != nil {
					b.Fatal(err)
				}
			}
			bench.ReportMetrics(b, m, bench.RTPerSec, bench.P50Us, bench.P99Us, bench.ServerCPUPerRT)
		})
	}
}
