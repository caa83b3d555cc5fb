package bridge_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
)

// gatedStore holds every read of the state of a topic under "slow." until
// open is closed, as a store or broker across a slow network would.
type gatedStore struct {
	bus.Store
	open    chan struct{}
	waiting chan string // told of each read it holds
}

func (s *gatedStore) Topic(ctx context.Context, topic string) (bus.TopicState, error) {
	if strings.HasPrefix(topic, "slow.") {
		s.waiting <- topic
		select {
		case <-s.open:
		case <-ctx.Done():
			return bus.TopicState{}, ctx.Err()
		}
	}
	return s.Store.Topic(ctx, topic)
}

// TestBlockedStoreStallsOnlyItsSubscribe: while a subscribe waits for the
// bus's store, the session that asked keeps getting its messages and
// other sessions subscribe and publish: the bridge holds no lock across
// the bus's I/O.
func TestBlockedStoreStallsOnlyItsSubscribe(t *testing.T) {
	st := &gatedStore{Store: bus.NewMemoryStore(), open: make(chan struct{}), waiting: make(chan string, 16)}
	e := newEnv(t, []bus.Option{bus.WithStore(st)},
		bridge.Expose("chat.>", bridge.Subscribe, bridge.Publish), bridge.Expose("slow.>", bridge.Subscribe))
	var once sync.Once
	release := func() { once.Do(func() { close(st.open) }) }
	t.Cleanup(release) // before the bridge closes: cleanups run last first

	a, _ := e.rawHello()
	a.send(`{"op":"subscribe","id":"1","sub":"a","pattern":"chat.room"}`)
	answerOp(t, a, "1", wire.OpSubscribed)
	a.send(`{"op":"subscribe","id":"2","sub":"slow","pattern":"slow.x"}`)
	select {
	case <-st.waiting:
	case <-time.After(20 * time.Second):
		t.Fatal("the subscribe never reached the store")
	}

	b, _ := e.rawHello()
	b.send(`{"op":"subscribe","id":"1","sub":"b","pattern":"chat.room"}`)
	answerOp(t, b, "1", wire.OpSubscribed)
	b.send(`{"op":"subscribe","id":"2","sub":"other","pattern":"chat.other"}`)
	answerOp(t, b, "2", wire.OpSubscribed)
	b.send(`{"op":"publish","id":"3","topic":"chat.room","data":"hi"}`)
	answerOp(t, b, "3", wire.OpPuback)
	for _, c := range []struct {
		name string
		r    *rawConn
		sub  string
	}{{"the publisher", b, "b"}, {"the session whose subscribe waits", a, "a"}} {
		if m := c.r.op(wire.OpMessage); m.Sub != c.sub || string(m.Data) != `"hi"` {
			t.Fatalf("%s got %+v, want the message on %s", c.name, m, c.sub)
		}
	}

	release()
	if f := answerOp(t, a, "2", wire.OpSubscribed); f.Sub != "slow" {
		t.Fatalf("the subscribe that waited: %+v", f)
	}
	a.alive()
}

// reentrant is a log handler that calls back into the bridge, as a host's
// handler may (to count sessions, say): it deadlocks if the bridge logs
// under one of its locks.
type reentrant struct {
	br   atomic.Pointer[bridge.Bridge]
	mu   sync.Mutex
	msgs []string
}

func (h *reentrant) Enabled(context.Context, slog.Level) bool { return true }
func (h *reentrant) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *reentrant) WithGroup(string) slog.Handler            { return h }

func (h *reentrant) Handle(_ context.Context, r slog.Record) error {
	if br := h.br.Load(); br != nil {
		br.Sessions()
		br.Stats()
	}
	h.mu.Lock()
	h.msgs = append(h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}

func (h *reentrant) logged(msg string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		if m == msg {
			return true
		}
	}
	return false
}

// TestLogHandlerMayCallTheBridge: the bridge's log handler runs under no
// lock of the bridge, so it may call the bridge.
func TestLogHandlerMayCallTheBridge(t *testing.T) {
	for _, tc := range []struct {
		name, msg string
		run       func(t *testing.T, e *env)
	}{
		{"delivery given up", "bridge: delivery given up", func(t *testing.T, e *env) {
			r, _ := e.rawHello()
			r.send(`{"op":"subscribe","id":"1","sub":"s","pattern":"chat.g","max_deliver":1,"ack_wait":100}`)
			answerOp(t, r, "1", wire.OpSubscribed)
			if _, err := e.bus.PublishRaw(ctxT(t), "chat.g", []byte(`1`)); err != nil {
				t.Fatal(err)
			}
			r.op(wire.OpMessage) // and never acknowledged
		}},
		{"slow client", "bridge: slow client disconnected", func(t *testing.T, e *env) {
			r, _ := e.rawHello()
			r.send(`{"op":"subscribe","id":"1","sub":"s","pattern":"chat.v","volatile":true}`)
			answerOp(t, r, "1", wire.OpSubscribed)
			big := []byte(`"` + strings.Repeat("y", 6<<10) + `"`)
			for range 50 {
				e.bus.PublishRaw(ctxT(t), "chat.v", big, bus.Volatile())
			}
			if code := r.closed(); code != wire.CloseSlow {
				t.Fatalf("close code %d, want %d", code, wire.CloseSlow)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &reentrant{}
			e := newEnv(t, nil, bridge.Expose("chat.>", bridge.Subscribe), bridge.OutboundLimit(8<<10),
				bridge.WithLogger(slog.New(h)))
			h.br.Store(e.br)
			tc.run(t, e)
			waitUntil(t, func() bool { return h.logged(tc.msg) })
			e.br.Sessions() // the bridge still answers
		})
	}
}
