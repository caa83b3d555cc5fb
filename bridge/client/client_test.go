package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func server(t *testing.T, opts ...bridge.Option) (*bus.Bus, string) {
	t.Helper()
	b, err := bus.New()
	if err != nil {
		t.Fatal(err)
	}
	br, err := bridge.New(b, opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(br)
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Start()
	t.Cleanup(func() { br.Close(); srv.Close(); b.Close() })
	return b, "ws" + strings.TrimPrefix(srv.URL, "http") + "/"
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDialErrors(t *testing.T) {
	_, url := server(t, bridge.Authenticate(func(*http.Request) (bridge.Identity, error) {
		return bridge.Identity{}, bridge.ErrUnauthorized
	}))
	if _, err := client.Dial(ctxT(t), url); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("dial refused: %v", err)
	}
	if _, err := client.Dial(ctxT(t), "ws://127.0.0.1:1/"); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	_, url = server(t, bridge.HelloAuth(func(context.Context, bridge.Identity, json.RawMessage) (bridge.Identity, error) {
		return bridge.Identity{}, errors.New("bad token")
	}))
	if _, err := client.Dial(ctxT(t), url, client.WithAuth("x")); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("hello refused: %v", err)
	}
	if _, err := client.Dial(ctxT(t), url, client.WithBackoff(0, 0)); err == nil {
		t.Fatal("bad backoff accepted")
	}
}

func TestErrorIs(t *testing.T) {
	var err error = &client.Error{Code: "forbidden", Message: "no"}
	if !errors.Is(err, client.ErrForbidden) || errors.Is(err, client.ErrLimit) {
		t.Fatal("errors.Is does not match by code")
	}
}

func TestVolatileAndStart(t *testing.T) {
	b, url := server(t, bridge.Expose("t.>", bridge.Subscribe, bridge.Publish))
	c, err := client.Dial(ctxT(t), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 5 {
		b.PublishRaw(ctxT(t), "t.a", []byte{'0' + byte(i)})
	}
	pos, _ := b.Position(ctxT(t), "t.a")
	got := make(chan *client.Message, 10)
	h := func(_ context.Context, m *client.Message) error { got <- m; return nil }
	if _, err := c.Subscribe(ctxT(t), "t.a", h, client.StartAfter(pos.Epoch, 3)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []uint64{4, 5} {
		if m := <-got; m.Seq != want {
			t.Fatalf("seq %d, want %d", m.Seq, want)
		}
	}
	vol := make(chan *client.Message, 10)
	if _, err := c.Subscribe(ctxT(t), "t.*", func(_ context.Context, m *client.Message) error { vol <- m; return nil }, client.Volatile()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctxT(t), "t.b", "v", client.Volatile(), client.WithAck()); err != nil {
		t.Fatal(err)
	}
	if m := <-vol; m.Seq != 0 || m.Topic != "t.b" || string(m.Data) != `"v"` {
		t.Fatalf("volatile message %+v", m)
	}
}
