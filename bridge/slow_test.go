package bridge_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
)

// stuckConn dials with a tiny receive buffer, says hello, subscribes with
// the given extra members, and never reads again.
func stuckConn(t *testing.T, e *env, subExtra string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		NetDial: func(network, addr string) (net.Conn, error) {
			c, err := net.Dial(network, addr)
			if err == nil {
				c.(*net.TCPConn).SetReadBuffer(4096)
			}
			return c, err
		},
	}
	ws, _, err := d.Dial(e.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	r := &rawConn{t: t, ws: ws}
	r.send(`{"op":"hello","v":1,"id":"h"}`)
	r.answer("h")
	r.send(`{"op":"subscribe","id":"s","sub":"s","pattern":"load.x"` + subExtra + `}`)
	r.answer("s")
	return ws
}

// TestStuckClient checks that a client that stops reading is disconnected
// as slow while another client's delivery goes on, for both delivery modes.
func TestStuckClient(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string
	}{
		{"volatile, outbound limit", `,"volatile":true`},
		{"at-least-once, write timeout", `,"max_inflight":4096`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, []bus.Option{bus.History(100000, 0)},
				bridge.Expose("load.>", bridge.Subscribe),
				bridge.OutboundLimit(64<<10), bridge.WriteTimeout(time.Second))
			stuckConn(t, e, tc.extra)
			healthy := e.dial()
			var got atomic.Uint64
			if _, err := healthy.Subscribe(ctxT(t), "load.x", func(_ context.Context, m *client.Message) error {
				if m.Seq != got.Load()+1 {
					t.Errorf("healthy client got seq %d after %d", m.Seq, got.Load())
				}
				got.Store(m.Seq)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			payload := []byte(`"` + strings.Repeat("x", 4000) + `"`)
			var published uint64
			deadline := time.Now().Add(30 * time.Second)
			extra := 200
			for extra > 0 && time.Now().Before(deadline) {
				for range 100 {
					seq, err := e.bus.PublishRaw(context.Background(), "load.x", payload)
					if err != nil {
						t.Fatal(err)
					}
					published = seq
				}
				if e.br.Stats().SlowDisconnects > 0 {
					extra -= 100 // keep publishing a little after the disconnect
				}
				time.Sleep(time.Millisecond)
			}
			if e.br.Stats().SlowDisconnects == 0 {
				t.Fatalf("stuck client not disconnected after %d messages", published)
			}
			for time.Now().Before(deadline) && (got.Load() < published || e.br.Stats().Connections > 1) {
				time.Sleep(10 * time.Millisecond)
			}
			if got.Load() != published {
				t.Fatalf("healthy client got %d of %d", got.Load(), published)
			}
			if n := e.br.Stats().Connections; n != 1 {
				t.Fatalf("%d connections, want the healthy one only", n)
			}
			t.Logf("published %d; stats %+v", published, e.br.Stats())
		})
	}
}

// TestSlowCloseCode checks that a client whose queue overflows while it
// still reads a little gets close code 4008.
func TestSlowCloseCode(t *testing.T) {
	e := newEnv(t, nil, bridge.Expose("load.>", bridge.Subscribe), bridge.OutboundLimit(8<<10))
	r, _ := e.rawHello()
	r.send(`{"op":"subscribe","id":"s","sub":"s","pattern":"load.x","volatile":true}`)
	r.answer("s")
	// Queue far more than the limit at once: the writer cannot drain it
	// between two publishes of one batch.
	big := []byte(`"` + strings.Repeat("y", 6<<10) + `"`)
	for range 50 {
		e.bus.PublishRaw(context.Background(), "load.x", big, bus.Volatile())
	}
	if code := r.closed(); code != wire.CloseSlow {
		t.Fatalf("close code %d, want %d", code, wire.CloseSlow)
	}
}
