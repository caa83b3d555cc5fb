package bench_test

import (
	"testing"
	"time"

	"github.com/courierbus/courier/bench/internal/bench"
)

// BenchmarkCluster publishes on node C of a 3-server NATS cluster (R3) to
// subscribers on node A, or on every node, beside the same case on one
// bus, without and with persist. Each iteration is one publish; the
// latency of 200 publishes one at a time is measured after the timed run.
func BenchmarkCluster(b *testing.B) {
	cl, err := bench.StartCluster(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	for _, sp := range bench.Spreads() {
		for _, im := range bench.Spreaders() {
			b.Run(sp.Slug()+"/impl="+im.Name, func(b *testing.B) {
				b.ReportAllocs()
				fl, err := im.Open(cl, b.TempDir(), sp)
				if err != nil {
					b.Fatal(err)
				}
				defer fl.Close()
				if _, err := bench.RunSpread(fl, bench.SpreadOptions{Messages: 50, Time: time.Minute}); err != nil { // warm up
					b.Fatal(err)
				}
				b.ResetTimer()
				m, err := bench.RunSpread(fl, bench.SpreadOptions{Messages: b.N, Time: time.Hour})
				b.StopTimer()
				if err == nil {
					err = bench.SpreadLatency(fl, m, 200, 2*time.Second)
				}
				if err != nil {
					b.Fatal(err)
				}
				bench.ReportMetrics(b, m, bench.MsgsPerSec, bench.P50Us, bench.P99Us, bench.LoadP50Us, bench.LoadP99Us, bench.CPUPerMsg, bench.AllocsPerMsg)
			})
		}
	}
}

// TestClusterSmoke runs every case of the cluster scenario small with
// every implementation, on a 3-server cluster, and checks that every
// subscriber handled every message.
func TestClusterSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster")
	}
	cl, err := bench.StartCluster(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n, samples = 200, 10
	for _, sp := range bench.Spreads() {
		for _, im := range bench.Spreaders() {
			fl, err := im.Open(cl, t.TempDir(), sp)
			if err != nil {
				t.Fatalf("%s %s: %v", sp.Name, im.Name, err)
			}
			m, err := bench.RunSpread(fl, bench.SpreadOptions{Messages: n, Time: time.Minute, LatencySamples: samples, LatencyTime: time.Minute})
			if cerr := fl.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatalf("%s %s: %v", sp.Name, im.Name, err)
			}
			if got, want := m[bench.Delivered], float64(n*len(sp.Subs)); got != want {
				t.Errorf("%s %s: delivered %v, want %v", sp.Name, im.Name, got, want)
			}
			if m[bench.P50Us] <= 0 || m[bench.P99Us] < m[bench.P50Us] {
				t.Errorf("%s %s: latency p50 %vµs, p99 %vµs", sp.Name, im.Name, m[bench.P50Us], m[bench.P99Us])
			}
			t.Logf("%s %s: %.0f msgs/s, p50 %.0fµs, p99 %.0fµs", sp.Name, im.Name, m[bench.MsgsPerSec], m[bench.P50Us], m[bench.P99Us])
		}
	}
}
