package bridge_test

import (
	"context"
	"net/http"
	"strings"
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
		return client.WithHeader(http.Header{})
	}
	return client.WithHeader(http.Header{"Authorization": {"Bearer " + user}})
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
		if _, err := pub.Publish(ctxT(t), "chat.room", "hi", client.Headers(forged), client.WithAck()); err != nil {
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
