package bench_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/courierbus/courier/bench/internal/bench"
)

// TestMain lets the test binary serve as the WebSocket servers' and the
// restart scenario's child process, and checks that the scenarios leave
// no goroutine behind.
func TestMain(m *testing.M) {
	bench.ChildMain(bench.MelodyServer(), bench.CourierServer())
	goleak.VerifyTestMain(m)
}
