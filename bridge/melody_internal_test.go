package bridge

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/courierbus/courier/bus"
)

// stuckBridge starts a bridge and one connection that said hello and then
// stopped reading, and returns the bridge's side of that connection.
func stuckBridge(t *testing.T, opts ...Option) (*Bridge, *conn) {
	t.Helper()
	b, err := bus.New()
	if err != nil {
		t.Fatal(err)
	}
	br, err := New(b, opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(br)
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Start()
	t.Cleanup(func() { br.Close(); srv.Close(); b.Close() })
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/", http.Header{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"hello","v":1}`))
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	br.lifeMu.Lock()
	defer br.lifeMu.Unlock()
	for c := range br.conns {
		return br, c
	}
	t.Fatal("no connection")
	return nil, nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMelodyBufferFull: melody drops a message silently when a session's
// buffer is full (it only tells the error handler). The bridge never has
// more than one batch in melody's buffer, and if melody reports the buffer
// full anyway, it disconnects the client as slow rather than lose frames.
func TestMelodyBufferFull(t *testing.T) {
	br, c := stuckBridge(t, WriteTimeout(time.Minute))
	big := []byte(`"` + strings.Repeat("z", 1<<20) + `"`)
	// Write around the bridge's queue, straight into melody's buffer,
	// until melody reports it full.
	for i := 0; i < 64 && br.stats.slow.Load() == 0; i++ {
		c.ms.Write(big)
	}
	waitFor(t, "slow disconnect", func() bool { return br.stats.slow.Load() == 1 })
	waitFor(t, "connection end", func() bool { return br.Stats().Connections == 0 })
}

// TestMelodyHubLock: melody calls the error handler while it holds its hub
// lock (Close, Broadcast); a handler that called back into melody there
// would deadlock. The bridge's handler only closes the socket.
func TestMelodyHubLock(t *testing.T) {
	br, c := stuckBridge(t, WriteTimeout(time.Minute))
	big := []byte(`"` + strings.Repeat("z", 1<<20) + `"`)
	for range 8 {
		c.ms.Write(big) // fill melody's buffer without going through the bridge
	}
	done := make(chan struct{})
	go func() {
		br.m.Broadcast([]byte(`{"op":"pong"}`)) // error handler under the read lock
		br.m.Close()                            // and under the write lock
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("melody deadlocked in the bridge's error handler")
	}
	waitFor(t, "connection end", func() bool { return br.Stats().Connections == 0 })
}

// TestMelodyReadLimit: melody reads at most 512 bytes per message by
// default; the bridge sets its own limits.
func TestMelodyReadLimit(t *testing.T) {
	b, _ := bus.New()
	defer b.Close()
	br, err := New(b, MessageLimit(1<<20), FrameLimit(512<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	if got := br.m.Config.MaxMessageSize; got != 1<<20 {
		t.Fatalf("melody MaxMessageSize %d, want %d", got, 1<<20)
	}
	if br.m.Upgrader.CheckOrigin == nil || br.m.Config.MessageBufferSize > 16 {
		t.Fatalf("melody left with its defaults: %+v", br.m.Config)
	}
}
