package bus_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/courierbus/courier/bus"
)

// TestCloseFromHandler: Close called from a handler does not wait for
// the goroutine it runs on; it returns once every other goroutine of the
// bus has ended, and the bus is closed.
func TestCloseFromHandler(t *testing.T) {
	b, err := bus.New()
	if err != nil {
		t.Fatal(err)
	}
	tp := newTopic[int](t, b, "close")
	other, _ := tp.Subscribe(func(context.Context, bus.Message[int]) error { return nil })
	closed := make(chan error, 1)
	tp.Subscribe(func(ctx context.Context, m bus.Message[int]) error {
		closed <- b.Close()
		return nil
	})
	publish(t, tp, 1)
	if err := recv(t, closed); err != nil {
		t.Fatalf("Close from a handler: %v", err)
	}
	select {
	case <-other.Done():
	default:
		t.Fatal("Close from a handler returned before the other subscription's goroutine ended")
	}
	if _, err := tp.Publish(context.Background(), 2); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("Publish after Close from a handler: %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close again: %v", err)
	}
}

// TestShutdownFromHandler: Shutdown from a handler would wait for itself;
// it returns ErrInHandler at once and the bus goes on.
func TestShutdownFromHandler(t *testing.T) {
	b := newBus(t)
	tp := newTopic[int](t, b, "shutdown")
	got := make(chan error, 1)
	tp.Subscribe(func(ctx context.Context, m bus.Message[int]) error {
		got <- b.Shutdown(context.Background())
		return nil
	})
	publish(t, tp, 1)
	if err := recv(t, got); !errors.Is(err, bus.ErrInHandler) {
		t.Fatalf("Shutdown from a handler: %v, want ErrInHandler", err)
	}
	publish(t, tp, 2) // still open
}

// TestCloseAfterShutdownDeadline: a Shutdown whose context ended has
// closed the bus; Close and Shutdown afterwards return nil at once.
func TestCloseAfterShutdownDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, _ := bus.New()
		tp, _ := bus.NewTopic[int](b, "stuck")
		tp.Subscribe(func(ctx context.Context, _ bus.Message[int]) error {
			<-ctx.Done()
			return ctx.Err()
		}, bus.AckWait(time.Hour))
		tp.Publish(context.Background(), 1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown past its deadline: %v, want DeadlineExceeded", err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("Close after Shutdown: %v, want nil", err)
		}
		if err := b.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown again: %v, want nil", err)
		}
	})
}

// failingSaves is a store that cannot save durable positions.
type failingSaves struct{ *bus.MemoryStore }

var errDiskFull = errors.New("disk full")

func (failingSaves) SaveConsumer(context.Context, string, string, bus.ConsumerState) error {
	return errDiskFull
}

// TestCloseReturnsErrors: Close returns the errors it met, once.
func TestCloseReturnsErrors(t *testing.T) {
	st := bus.NewMemoryStore()
	defer st.Close()
	b, err := bus.New(bus.WithStore(failingSaves{st}))
	if err != nil {
		t.Fatal(err)
	}
	tp := newTopic[int](t, b, "d")
	if _, err := tp.Subscribe(func(context.Context, bus.Message[int]) error { return nil }, bus.Durable("c")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); !errors.Is(err, errDiskFull) {
		t.Fatalf("Close: %v, want the store's error", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close again: %v, want nil", err)
	}
}
