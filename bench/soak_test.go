package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/courierbus/courier/bench/internal/bench"
)

// TestSoak is the soak of bench/cmd/soak in 30 seconds and 600
// connections, small enough for the race detector: delivery goes on in
// every interval and the server's goroutines come back to their count
// before the first connection. The resident set is printed, not checked:
// under the race detector it says little.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30-second soak")
	}
	res, err := bench.Soak(context.Background(), bench.SoakConfig{
		Conns: 600, Duration: 30 * time.Second, ReportEvery: 5 * time.Second, Warmup: 10 * time.Second,
	}, t.Output())
	if err != nil {
		t.Fatal(err)
	}
	if !res.GoroutinesOK || !res.DeliveryOK {
		t.Fatal(res.VerdictText())
	}
	if res.Delivered == 0 {
		t.Fatal("nothing delivered")
	}
}
