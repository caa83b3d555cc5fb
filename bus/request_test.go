package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/courierbus/courier/bus"
)

type sum struct{ A, B int }

func TestRequestReply(t *testing.T) {
	b := newBus(t)
	ep, err := bus.NewEndpoint[sum, int](b, "math.add")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := ep.Request(ctx, sum{1, 2}); !errors.Is(err, bus.ErrNoHandler) {
		t.Fatalf("request with no handler: %v, want ErrNoHandler at once", err)
	}
	h, err := ep.Handle(func(_ context.Context, r sum) (int, error) {
		if r.A < 0 {
			return 0, errors.New("negative")
		}
		return r.A + r.B, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ep.Request(ctx, sum{2, 3}); err != nil || got != 5 {
		t.Fatalf("Request = %d, %v; want 5", got, err)
	}
	if _, err := ep.Request(ctx, sum{-1, 3}); err == nil || err.Error() != "negative" {
		t.Fatalf("handler error: %v, want negative", err)
	}
	raw, err := b.RequestRaw(ctx, "math.add", []byte(`{"A":40,"B":2}`))
	if err != nil || string(raw) != "42" {
		t.Fatalf("RequestRaw = %s, %v", raw, err)
	}
	if _, err := b.RequestRaw(ctx, "math.add", []byte(`"text"`)); !errors.Is(err, bus.ErrTypeMismatch) {
		t.Fatalf("RequestRaw with a wrong type: %v, want ErrTypeMismatch", err)
	}
	if _, err := bus.NewEndpoint[string, int](b, "math.add"); !errors.Is(err, bus.ErrTypeMismatch) {
		t.Fatalf("endpoint rebound to other types: %v", err)
	}
	h.Stop()
	if _, err := ep.Request(ctx, sum{1, 1}); !errors.Is(err, bus.ErrNoHandler) {
		t.Fatalf("request after Stop: %v, want ErrNoHandler", err)
	}
}

func TestRequestDeadlineBoundsTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus(t)
		ep, _ := bus.NewEndpoint[string, string](b, "slow")
		ep.Handle(func(ctx context.Context, s string) (string, error) {
			<-ctx.Done() // gives up when the requester does
			return "", ctx.Err()
		})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := ep.Request(ctx, "x")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 2*time.Second {
			t.Fatalf("Request = %v after %v, want DeadlineExceeded after 2s", err, time.Since(start))
		}
	})
}

func TestRequestHandlerPanics(t *testing.T) {
	b := newBus(t)
	ep, _ := bus.NewEndpoint[int, int](b, "boom")
	ep.Handle(func(context.Context, int) (int, error) { panic("kaput") })
	_, err := ep.Request(context.Background(), 1)
	var he *bus.HandlerError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "kaput") {
		t.Fatalf("Request to a panicking handler: %v, want *HandlerError", err)
	}
}

func TestRequestsSpreadOverHandlers(t *testing.T) {
	b := newBus(t)
	ep, _ := bus.NewEndpoint[int, string](b, "who")
	for _, name := range []string{"a", "b"} {
		ep.Handle(func(context.Context, int) (string, error) { return name, nil })
	}
	seen := map[string]int{}
	for i := range 10 {
		r, err := ep.Request(context.Background(), i)
		if err != nil {
			t.Fatal(err)
		}
		seen[r]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("requests per handler = %v, want 5 each", seen)
	}
}

func TestRawReplyOfNilRawMessage(t *testing.T) {
	b := newBus(t)
	ep, _ := bus.NewEndpoint[json.RawMessage, json.RawMessage](b, "nothing")
	ep.Handle(func(context.Context, json.RawMessage) (json.RawMessage, error) { return nil, nil })
	got, err := b.RequestRaw(context.Background(), "nothing", []byte(`{}`))
	if err != nil || string(got) != "null" {
		t.Fatalf("RequestRaw with a nil RawMessage reply = %s, %v; want null, nil", got, err)
	}
}
