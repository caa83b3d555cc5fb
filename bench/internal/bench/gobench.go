package bench

import (
	"errors"
	"testing"
	"time"
)

// BenchInProc runs impl on sh as a Go benchmark: b.N messages published,
// reporting msgs/s (deliveries, wall time), cpu-ns/msg and allocs/msg per
// delivered message. ns/op is reported as 0: wall time per publish means
// little across shapes.
func BenchInProc(b *testing.B, impl InProc, sh Shape) {
	fl, err := impl.Open(sh)
	if errors.Is(err, ErrUnsupported) {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer fl.Close()
	if _, err := RunInProc(fl, 1000, time.Minute); err != nil { // warm up
		b.Fatal(err)
	}
	b.ResetTimer()
	m, err := RunInProc(fl, b.N, time.Hour)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	ReportMetrics(b, m, MsgsPerSec, CPUPerMsg, AllocsPerMsg)
}

// ReportMetrics reports the named metrics of m on b, and ns/op as 0.
func ReportMetrics(b *testing.B, m Metrics, names ...string) {
	for _, n := range names {
		if v, ok := m[n]; ok {
			b.ReportMetric(v, n)
		}
	}
	b.ReportMetric(0, "ns/op")
}
