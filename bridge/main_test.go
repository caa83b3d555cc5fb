package bridge_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bus"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(serverEnv); mode != "" {
		runServer(mode) // a child server of the memory benchmarks
		return
	}
	goleak.VerifyTestMain(m)
}

// env is a bus, a bridge mounted at /bus/ and an HTTP server on 127.0.0.1.
type env struct {
	t   testing.TB
	bus *bus.Bus
	br  *bridge.Bridge
	srv *httptest.Server
	url string // ws://127.0.0.1:port/bus/
}

func newEnv(t testing.TB, busOpts []bus.Option, opts ...bridge.Option) *env {
	t.Helper()
	b, err := bus.New(busOpts...)
	if err != nil {
		t.Fatal(err)
	}
	br, err := bridge.New(b, opts...)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	srv := newServer(br)
	e := &env{t: t, bus: b, br: br, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/bus/"}
	t.Cleanup(e.close)
	return e
}

// newServer mounts h at /bus/ on a server on 127.0.0.1 with the timeouts
// a host must set (the bridge sets its own per-frame write timeout).
func newServer(h http.Handler) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("/bus/", h)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Config.ReadTimeout = 10 * time.Second
	srv.Config.WriteTimeout = 10 * time.Second
	srv.Config.IdleTimeout = 30 * time.Second
	srv.Start()
	return srv
}

func (e *env) close() {
	e.br.Close()
	e.srv.Close()
	e.bus.Close()
}

func (e *env) dial(opts ...client.Option) *client.Client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, e.url, opts...)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSmoke(t *testing.T) {
	e := newEnv(t, nil, bridge.Expose("chat.>", bridge.Subscribe, bridge.Publish))
	c := e.dial()
	got := make(chan *client.Message, 10)
	_, err := c.Subscribe(ctxT(t), "chat.a", func(_ context.Context, m *client.Message) error {
		got <- m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	seq, err := c.Publish(ctxT(t), "chat.a", map[string]string{"text": "hi"}, client.Ack())
	if err != nil || seq != 1 {
		t.Fatalf("publish: seq %d, err %v", seq, err)
	}
	select {
	case m := <-got:
		if string(m.Data) != `{"text":"hi"}` || m.Seq != 1 {
			t.Fatalf("got %+v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
}
