package bench_test

import (
	"os"
	"testing"

	"github.com/courierbus/courier/bench"
)

// TestMain lets the test binary serve as the WebSocket servers' and the
// restart scenario's child process.
func TestMain(m *testing.M) {
	bench.ChildMain(bench.MelodyServer(), bench.CourierServer())
	os.Exit(m.Run())
}
