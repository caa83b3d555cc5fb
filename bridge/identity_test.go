package bridge_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bus"
)

// bearer authenticates "Authorization: Bearer <id>"; no header is
// anonymous.
func bearer(r *http.Request) (bridge.Identity, error) {
	return bridge.Identity{ID: strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")}, nil
}

func as(user string) client.Option {
	if user == "" {
		return client.Header(http.Header{})
	}
	return client.Header(http.Header{"Authorization": {"Bearer " + user}})
}

// TestPublisherHeaders: every message a client publishes carries who
// published it, set by the server: the identity and the session. What the
// client sent under those names (in any case) is dropped; its other
// headers pass. Live deliveries, history and in-process subscribers all
// see the same.
func TestPublisherHeaders(t *testing.T) {
	e := newEnv(t, nil, bridge.Authenticate(bearer), bridge.Expose("chat.>", bridge.Subscribe, bridge.Publish))
	host := make(chan bus.Message[any], 10)
	hs, err := e.bus.Subscribe("chat.>", func(_ context.Context, m bus.Message[any]) error {
		host <- m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Unsubscribe()
	reader := e.dial(as("reader"))
	live := newInbox()
	if _, err := reader.Subscribe(ctxT(t), "chat.>", live.handle); err != nil {
		t.Fatal(err)
	}
	forged := map[string]string{
		"courier-user": "admin", "Courier-Session": "someone-else", "COURIER-other": "x", "trace": "abc",
	}
	for i, user := range []string{"alice", ""} {
		pub := e.dial(as(user))
		if _, err := pub.Publish(ctxT(t), "chat.room", "hi", client.Headers(forged), client.Ack()); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{bridge.HeaderSession: pub.SessionID(), "trace": "abc"}
		if user != "" {
			want[bridge.HeaderUser] = user
		}
		check := func(where string, got map[string]string) {
			t.Helper()
			if len(got) != len(want) {
				t.Errorf("user %q, %s: headers %v, want %v", user, where, got, want)
				return
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("user %q, %s: headers %v, want %v", user, where, got, want)
					return
				}
			}
		}
		m := live.wait(t, i+1)[i]
		check("live", m.Headers)
		hist := newInbox()
		if _, err := e.dial().Subscribe(ctxT(t), "chat.room", hist.handle, client.StartSeq(m.Seq)); err != nil {
			t.Fatal(err)
		}
		check("from history", hist.wait(t, 1)[0].Headers)
		check("in-process", (<-host).Headers())
	}
}

// TestAuthorizeSessionID: the Authorize hook's ctx names the session that
// asks, for every action, so a hook can tell apart two sessions of one
// identity.
func TestAuthorizeSessionID(t *testing.T) {
	type ask struct {
		session string
		action  bridge.Action
		name    string
	}
	var mu sync.Mutex
	var asks []ask
	var b *bus.Bus
	e := newEnv(t, nil, bridge.Authenticate(bearer),
		bridge.Expose("chat.>", bridge.Subscribe, bridge.Publish, bridge.Request),
		bridge.ExposeRooms(">", bridge.Join, bridge.Presence),
		bridge.Authorize(func(ctx context.Context, id bridge.Identity, action bridge.Action, name string) error {
			sid, ok := bridge.SessionID(ctx)
			if !ok || sid == "" {
				return errors.New("no session in the hook's ctx")
			}
			mu.Lock()
			asks = append(asks, ask{sid, action, name})
			mu.Unlock()
			// Only the session in the room "vip" may use "chat.vip".
			if name == "chat.vip" && !slices.Contains(b.RoomMembers("vip"), sid) {
				return errors.New("not in vip")
			}
			return nil
		}))
	b = e.bus
	if _, ok := bridge.SessionID(context.Background()); ok {
		t.Error("SessionID of a ctx not from the bridge: ok")
	}
	// Two sessions of one identity: only the one in the room gets in.
	in, out := e.dial(as("alice")), e.dial(as("alice"))
	if err := in.Join(ctxT(t), "vip"); err != nil {
		t.Fatal(err)
	}
	h := func(context.Context, *client.Message) error { return nil }
	if _, err := in.Subscribe(ctxT(t), "chat.vip", h); err != nil {
		t.Errorf("the session in the room: %v", err)
	}
	if _, err := out.Subscribe(ctxT(t), "chat.vip", h); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("the other session of the same identity: got %v, want forbidden", err)
	}
	if _, err := out.Publish(ctxT(t), "chat.vip", 1, client.Ack()); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("publish from the other session: got %v, want forbidden", err)
	}
	if _, err := in.Publish(ctxT(t), "chat.vip", 1, client.Ack()); err != nil {
		t.Errorf("publish from the session in the room: %v", err)
	}
	if _, err := out.Presence(ctxT(t), "vip"); err != nil {
		t.Fatal(err)
	}
	if _, err := out.Request(ctxT(t), "chat.rpc", 1); !errors.Is(err, client.ErrNoHandler) {
		t.Fatalf("request: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []ask{
		{in.SessionID(), bridge.Join, "vip"},
		{in.SessionID(), bridge.Subscribe, "chat.vip"},
		{out.SessionID(), bridge.Subscribe, "chat.vip"},
		{out.SessionID(), bridge.Publish, "chat.vip"},
		{in.SessionID(), bridge.Publish, "chat.vip"},
		{out.SessionID(), bridge.Presence, "vip"},
		{out.SessionID(), bridge.Request, "chat.rpc"},
	}
	if !slices.Equal(asks, want) {
		t.Errorf("the hook was asked %v, want %v", asks, want)
	}
}
