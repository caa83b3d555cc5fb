package bus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/bus/bustest"
)

// gate holds up the store reads of one topic until it is opened.
type gate struct {
	mu      sync.Mutex
	topic   string        // reads of this topic wait
	what    string        // by this method, or by any when ""
	open    chan struct{} // closed to let them go
	entered chan string   // told when a read waits
	once    sync.Once
}

// newGate returns a gate that opens when the test ends, if not before.
func newGate(t *testing.T) *gate {
	g := &gate{open: make(chan struct{}), entered: make(chan string, 16)}
	t.Cleanup(g.release)
	return g
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func (g *gate) block(topic, what string) {
	g.mu.Lock()
	g.topic, g.what = topic, what
	g.mu.Unlock()
}

func (g *gate) wait(ctx context.Context, topic, what string) error {
	g.mu.Lock()
	blocked := topic == g.topic && (g.what == "" || g.what == what)
	g.mu.Unlock()
	if !blocked {
		return nil
	}
	g.entered <- what
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// slowStore is a Store whose reads of one topic block.
type slowStore struct {
	*bus.MemoryStore
	g *gate
}

func (s slowStore) Topic(ctx context.Context, topic string) (bus.TopicState, error) {
	if err := s.g.wait(ctx, topic, "Topic"); err != nil {
		return bus.TopicState{}, err
	}
	return s.MemoryStore.Topic(ctx, topic)
}

func (s slowStore) SeqAt(ctx context.Context, topic string, t time.Time) (uint64, error) {
	if err := s.g.wait(ctx, topic, "SeqAt"); err != nil {
		return 0, err
	}
	return s.MemoryStore.SeqAt(ctx, topic, t)
}

func (s slowStore) Consumer(ctx context.Context, topic, name string) (bus.ConsumerState, bool, error) {
	if err := s.g.wait(ctx, topic, "Consumer"); err != nil {
		return bus.ConsumerState{}, false, err
	}
	return s.MemoryStore.Consumer(ctx, topic, name)
}

// slowBroker is the in-memory hub's broker with the reads of slowStore.
type slowBroker struct {
	*bustest.HubNode
	g *gate
}

func (s slowBroker) Consumer(ctx context.Context, topic, name string) (bus.ConsumerState, bool, error) {
	if err := s.g.wait(ctx, topic, "Consumer"); err != nil {
		return bus.ConsumerState{}, false, err
	}
	return s.HubNode.Consumer(ctx, topic, name)
}

// publishes publishes v on tp from another goroutine and returns the
// outcome, so that a publish held up fails the test rather than hanging it.
func publishes(tp *bus.Topic[int], v int) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := tp.Publish(context.Background(), v)
		done <- err
	}()
	return done
}

// flows checks, from another goroutine, that a new topic can be made,
// subscribed to and published to while the gate holds a store read up.
func flows(t *testing.T, b *bus.Bus, topic string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- flow(b, topic) }()
	if err := recv(t, done); err != nil {
		t.Fatal(err)
	}
}

func flow(b *bus.Bus, topic string) error {
	tp, err := bus.NewTopic[int](b, topic)
	if err != nil {
		return err
	}
	got := make(chan int, 1)
	sub, err := tp.Subscribe(func(_ context.Context, m bus.Message[int]) error {
		got <- m.Value
		return nil
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if _, err := tp.Publish(context.Background(), 7); err != nil {
		return err
	}
	if v := <-got; v != 7 {
		return fmt.Errorf("got %d, want 7", v)
	}
	return nil
}

// TestBlockedStoreHoldsUpNoOtherTopic: a Store or Broker read that blocks
// holds up the call that made it and nothing else — not the topic's
// publishes, not the other topics, not subscribing to them.
func TestBlockedStoreHoldsUpNoOtherTopic(t *testing.T) {
	t.Run("durable subscribe, store", func(t *testing.T) {
		g := newGate(t)
		b := newBus(t, bus.WithStore(slowStore{bus.NewMemoryStore(), g}))
		a := newTopic[int](t, b, "a")
		g.block("a", "Consumer")
		done := make(chan error, 1)
		go func() {
			_, err := a.Subscribe(func(context.Context, bus.Message[int]) error { return nil }, bus.Durable("d"))
			done <- err
		}()
		recv(t, g.entered)
		pub := publishes(a, 1) // the topic whose durable position is being read
		flows(t, b, "b")
		if err := recv(t, pub); err != nil {
			t.Fatal(err)
		}
		g.release()
		if err := recv(t, done); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("topic loading its dedupe window, store", func(t *testing.T) {
		g := newGate(t)
		b := newBus(t, bus.WithStore(slowStore{bus.NewMemoryStore(), g}))
		g.block("c", "SeqAt")
		done := make(chan error, 1)
		go func() {
			_, err := bus.NewTopic[int](b, "c")
			done <- err
		}()
		recv(t, g.entered)
		flows(t, b, "b") // a new topic, a subscription and a publish
		g.release()
		if err := recv(t, done); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("durable subscribe, broker", func(t *testing.T) {
		g := newGate(t)
		hub := bustest.NewHub()
		node := hub.Node("n1")
		b, err := bus.New(bus.WithBroker(slowBroker{node, g}))
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			b.Close()
			node.Close()
			hub.Close()
		}()
		a := newTopic[int](t, b, "a")
		g.block("a", "Consumer")
		done := make(chan error, 1)
		go func() {
			_, err := a.Subscribe(func(context.Context, bus.Message[int]) error { return nil }, bus.Durable("d"))
			done <- err
		}()
		recv(t, g.entered)
		// A record of a queued first on the node's one feed: b's records
		// come after it.
		pub := publishes(a, 1)
		flows(t, b, "b")
		if err := recv(t, pub); err != nil {
			t.Fatal(err)
		}
		g.release()
		if err := recv(t, done); err != nil {
			t.Fatal(err)
		}
	})
}

// TestContextBoundsStoreCalls: Context bounds what NewTopic and Subscribe
// ask of the store; when it ends first they return its error and leave
// nothing behind, so the same call succeeds later.
func TestContextBoundsStoreCalls(t *testing.T) {
	g := newGate(t)
	b := newBus(t, bus.WithStore(slowStore{bus.NewMemoryStore(), g}))
	nop := func(context.Context, bus.Message[int]) error { return nil }

	g.block("c", "Topic")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := bus.NewTopic[int](b, "c", bus.Context(ctx))
		done <- err
	}()
	recv(t, g.entered)
	cancel()
	if err := recv(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("NewTopic with a cancelled Context: %v, want context.Canceled", err)
	}

	a := newTopic[int](t, b, "a")
	g.block("a", "Consumer")
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		_, err := a.Subscribe(nop, bus.Durable("d"), bus.Context(ctx))
		done <- err
	}()
	recv(t, g.entered)
	cancel()
	if err := recv(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe with a cancelled Context: %v, want context.Canceled", err)
	}

	g.block("", "")
	if _, err := bus.NewTopic[int](b, "c", bus.Context(context.Background())); err != nil {
		t.Fatalf("NewTopic again: %v", err)
	}
	if _, err := a.Subscribe(nop, bus.Durable("d"), bus.Context(context.Background())); err != nil {
		t.Fatalf("Subscribe again: %v (the cancelled one left the durable behind)", err)
	}
	var nilCtx context.Context
	if _, err := a.Subscribe(nop, bus.Context(nilCtx)); !errors.Is(err, bus.ErrInvalidOption) {
		t.Fatalf("Subscribe with a nil Context: %v, want ErrInvalidOption", err)
	}
}
