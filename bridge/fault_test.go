package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/internal/tcpproxy"
)

// TestFaultCuts cuts every connection through the proxy after a random
// number of bytes from the server, so that cuts fall inside frames, inside
// the HTTP upgrade and the welcome, and inside the messages a resume sends
// again. One client publishes with acknowledgements and another subscribes,
// both through the proxy; the subscriber's handler must see every
// acknowledged publish exactly once, in order.
func TestFaultCuts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		total    int
		min, max int64 // bytes a connection carries to its client before the cut
		inflight int
	}{
		// Message frames are about 180 bytes: a random count falls inside
		// one almost always.
		{"mid-frame", 1500, 512, 8 << 10, 8},
		// The upgrade answer and the welcome take about 600 bytes, and a
		// resume sends the unacknowledged deliveries right after: most cuts
		// fall while the client resumes, many before it has its welcome.
		{"during resume", 400, 1, 2 << 10, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, []bus.Option{bus.History(2*tc.total, 0)},
				bridge.Expose("load.>", bridge.Subscribe, bridge.Publish))
			p := tcpproxy.New(t, strings.TrimPrefix(e.srv.URL, "http://"))
			var resumes, reconnects atomic.Int64
			events := func(who string) client.Option {
				return client.OnEvent(func(ev client.Event) {
					switch ev.Type {
					case client.Connected:
						if ev.Resumed {
							resumes.Add(1)
						} else {
							reconnects.Add(1)
						}
						for sub, ok := range ev.Recovered {
							if !ok {
								t.Errorf("%s: subscription %s not recovered", who, sub)
							}
						}
					case client.Stopped, client.ServerError, client.Resync:
						t.Errorf("%s: event %v: %v", who, ev.Type, ev.Err)
					}
				})
			}
			dial := func(who string) *client.Client {
				c, err := client.Dial(ctxT(t), p.URL(e.url), client.ReconnectBackoff(time.Millisecond, 10*time.Millisecond), events(who))
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			sub, pub := dial("subscriber"), dial("publisher")
			defer sub.Close()
			defer pub.Close()

			var mu sync.Mutex
			var got []string
			all := make(chan struct{})
			_, err := sub.Subscribe(ctxT(t), "load.x", func(_ context.Context, m *client.Message) error {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, fmt.Sprintf("%d:%s", m.Seq, m.Data))
				if len(got) == tc.total {
					close(all)
				}
				return nil
			}, client.MaxUnacked(tc.inflight))
			if err != nil {
				t.Fatal(err)
			}

			// From now on every new connection is cut; cut the two that are up.
			var small atomic.Int64
			p.CutAfter(func() int64 {
				n := tc.min + rand.Int64N(tc.max-tc.min+1)
				if n < 1500 {
					small.Add(1)
				}
				return n
			})
			p.Cut()

			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			pad := strings.Repeat("x", 64)
			for i := 1; i <= tc.total; i++ {
				data := json.RawMessage(fmt.Sprintf(`{"i":%d,"pad":%q}`, i, pad))
				seq, err := pub.Publish(ctx, "load.x", data, client.Ack())
				if err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
				if seq != uint64(i) {
					t.Fatalf("publish %d acknowledged with seq %d: published twice or lost", i, seq)
				}
			}
			select {
			case <-all:
			case <-ctx.Done():
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != tc.total {
				t.Fatalf("handled %d of %d acknowledged messages", len(got), tc.total)
			}
			pad = fmt.Sprintf("%q", pad)
			for i, g := range got {
				want := fmt.Sprintf(`%d:{"i":%d,"pad":%s}`, i+1, i+1, pad)
				if g != want {
					t.Fatalf("message %d is %.40s, want %.40s: not exactly once in order", i, g, want)
				}
			}
			if p.LimitCuts() < 10 || resumes.Load() < 5 {
				t.Fatalf("only %d cuts and %d resumes", p.LimitCuts(), resumes.Load())
			}
			if early := int64(p.LimitCuts()) - resumes.Load(); tc.name == "during resume" && early < 5 {
				t.Errorf("only %d connections were cut before their resume completed", early)
			}
			if reconnects.Load() != 2 {
				t.Errorf("%d new sessions, want the 2 first ones: every reconnect should resume", reconnects.Load())
			}
			t.Logf("%d cuts (%d within the first 1500 bytes), %d resumes; server: %d resumed, %d frames out",
				p.LimitCuts(), small.Load(), resumes.Load(), e.br.Stats().Resumed, e.br.Stats().FramesOut)
		})
	}
}

// stallConn upgrades a connection to the bridge and returns the WebSocket
// over it; it never answers pings, as a stalled peer would not.
func stallConn(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	ws.SetPingHandler(func(string) error { return nil })
	return ws
}

// halfFrame writes the first half of a masked text frame holding payload,
// straight to the socket.
func halfFrame(t *testing.T, ws *websocket.Conn, payload string) {
	t.Helper()
	var f bytes.Buffer
	f.WriteByte(0x81) // FIN, text
	f.WriteByte(0x80 | byte(len(payload)))
	mask := [4]byte{1, 2, 3, 4}
	f.Write(mask[:])
	for i := range len(payload) / 2 {
		f.WriteByte(payload[i] ^ mask[i%4])
	}
	if _, err := ws.UnderlyingConn().Write(f.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// ended waits for the server to end ws and returns the close code it
// sent, or 0 when it closed the socket without one.
func ended(t *testing.T, ws *websocket.Conn) int {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		if ce, ok := errors.AsType[*websocket.CloseError](err); ok {
			return ce.Code
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			t.Fatal("the server did not end the stalled connection")
		}
		return 0
	}
}

// TestFaultStalls: peers that stop halfway through the HTTP request, the
// hello, or a later frame are closed by the host's ReadHeaderTimeout, the
// bridge's HandshakeTimeout and its heartbeat, while a healthy client goes
// on.
func TestFaultStalls(t *testing.T) {
	e := newEnv(t, nil, bridge.Expose("load.>", bridge.Subscribe, bridge.Publish),
		bridge.HandshakeTimeout(300*time.Millisecond), bridge.Heartbeat(100*time.Millisecond))
	healthy := e.dial()
	check := func(t *testing.T) {
		t.Helper()
		if _, err := healthy.Publish(ctxT(t), "load.ok", 1, client.Ack()); err != nil {
			t.Fatalf("healthy client: %v", err)
		}
	}

	t.Run("half an HTTP request", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(e.br)
		srv.Config.ReadHeaderTimeout = 300 * time.Millisecond
		srv.Start()
		defer srv.Close()
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /bus/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConn")
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err = io.Copy(io.Discard, c) // until the server closes it
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			t.Fatal("the server did not close a connection stalled in its request headers")
		}
		check(t)
	})

	t.Run("half a hello", func(t *testing.T) {
		ws := stallConn(t, e.url)
		halfFrame(t, ws, `{"op":"hello","v":1,"id":"h"}`)
		if code := ended(t, ws); code != wire.CloseHelloTimeout {
			t.Fatalf("close code %d, want %d (hello timeout)", code, wire.CloseHelloTimeout)
		}
		check(t)
	})

	t.Run("half a frame", func(t *testing.T) {
		ws := stallConn(t, e.url)
		ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"hello","v":1,"id":"h"}`))
		if _, msg, err := ws.ReadMessage(); err != nil || !bytes.Contains(msg, []byte(`"welcome"`)) {
			t.Fatalf("no welcome: %s %v", msg, err)
		}
		before := e.br.Stats()
		halfFrame(t, ws, `{"op":"subscribe","id":"s","sub":"s","pattern":"load.x"}`)
		ended(t, ws) // no pong within two heartbeats and 5 s
		waitUntil(t, func() bool { return e.br.Stats().Connections == before.Connections-1 })
		check(t)
	})
}

// TestFaultCloseUnderLoad closes the bridge and the bus, or shuts them
// down, while clients publish, subscribe and sit in rooms and in-process
// publishers run: each Close and Shutdown returns, the bus's Shutdown
// delivers every acknowledged message to the in-process subscriber, and
// nothing is left running (goleak in TestMain).
func TestFaultCloseUnderLoad(t *testing.T) {
	for _, shutdown := range []bool{false, true} {
		name := "Close"
		if shutdown {
			name = "Shutdown"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nil, bridge.Expose("load.>", bridge.Subscribe, bridge.Publish),
				bridge.ExposeRooms(">", bridge.Join))
			var delivered atomic.Int64
			var clients []*client.Client
			for i := range 20 {
				c := e.dial(client.ReconnectBackoff(10*time.Millisecond, 50*time.Millisecond))
				clients = append(clients, c)
				if _, err := c.Subscribe(ctxT(t), "load.>", func(context.Context, *client.Message) error {
					delivered.Add(1)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if err := c.Join(ctxT(t), "r"+strconv.Itoa(i%3)); err != nil {
					t.Fatal(err)
				}
			}
			var handled, acked atomic.Uint64
			if _, err := e.bus.Subscribe("load.in", func(_ context.Context, m bus.Message[any]) error {
				handled.Add(1)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for i, c := range clients[:3] {
				wg.Go(func() {
					for j := 0; ; j++ {
						select {
						case <-stop:
							return
						default:
						}
						ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
						c.Publish(ctx, "load.c"+strconv.Itoa(i), j, client.Ack())
						cancel()
					}
				})
			}
			var pubMu sync.Mutex
			for range 2 {
				wg.Go(func() {
					for j := 0; ; j++ {
						pubMu.Lock() // one publisher at a time, so acked is the highest seq
						seq, err := e.bus.PublishRaw(context.Background(), "load.in", []byte(strconv.Itoa(j)))
						if err == nil {
							acked.Store(seq)
						}
						pubMu.Unlock()
						if err != nil {
							if !errors.Is(err, bus.ErrClosed) {
								t.Errorf("publish: %v", err)
							}
							return
						}
						e.bus.PublishRaw(context.Background(), "load.v", []byte(strconv.Itoa(j)), bus.Volatile(), bus.To("r1"))
					}
				})
			}
			waitUntil(t, func() bool { return delivered.Load() > 2000 && handled.Load() > 500 })

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if shutdown {
				if err := e.br.Shutdown(ctx); err != nil {
					t.Fatalf("bridge Shutdown: %v", err)
				}
				if err := e.bus.Shutdown(ctx); err != nil {
					t.Fatalf("bus Shutdown: %v", err)
				}
				if handled.Load() != acked.Load() {
					t.Fatalf("after Shutdown the subscriber handled %d messages, publishes acknowledged %d", handled.Load(), acked.Load())
				}
			} else {
				if err := e.br.Close(); err != nil {
					t.Fatalf("bridge Close: %v", err)
				}
				if err := e.bus.Close(); err != nil {
					t.Fatalf("bus Close: %v", err)
				}
			}
			if s := e.br.Stats(); s.Connections != 0 || s.Sessions != 0 || s.Routes != 0 {
				t.Fatalf("after %s: %+v", name, s)
			}
			close(stop)
			wg.Wait()
			for _, c := range clients {
				c.Close()
			}
		})
	}
}
