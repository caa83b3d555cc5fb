package bus_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/courierbus/courier/bus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newBus returns a bus closed when the test ends.
func newBus(t testing.TB, opts ...bus.Option) *bus.Bus {
	t.Helper()
	b, err := bus.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func newTopic[T any](t testing.TB, b *bus.Bus, name string, opts ...bus.TopicOption) *bus.Topic[T] {
	t.Helper()
	tp, err := bus.NewTopic[T](b, name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func publish[T any](t testing.TB, tp *bus.Topic[T], v T, opts ...bus.PublishOption) uint64 {
	t.Helper()
	seq, err := tp.Publish(context.Background(), v, opts...)
	if err != nil {
		t.Fatalf("Publish(%v): %v", v, err)
	}
	return seq
}

// recv waits for one value from ch, failing the test after a generous
// bound (a hang guard, not a timing assertion).
func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a delivery")
	}
	var zero T
	return zero
}

// none checks that nothing arrives on ch within a short while.
func none[T any](t testing.TB, ch <-chan T) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected delivery: %v", v)
	case <-time.After(50 * time.Millisecond):
	}
}
