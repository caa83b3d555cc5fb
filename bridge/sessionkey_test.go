package bridge_test

import (
	"testing"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bus"
)

// Bridges sharing a SessionKey honour each other's resume tokens: the
// session id (the member id) carries over, not resumed, for the same
// identity only; a bridge with another key makes a new session.
func TestSessionKey(t *testing.T) {
	key := []byte("sixteen bytes at least, shared")
	a := newEnv(t, nil, bridge.SessionKey(key))
	b := newEnv(t, nil, bridge.SessionKey(key))
	other := newEnv(t, nil, bridge.SessionKey([]byte("another key of sixteen bytes")))

	_, w := a.rawHello()
	if w.Session == "" || w.Resume == "" {
		t.Fatalf("welcome without session or token: %+v", w)
	}
	hello := `{"op":"hello","v":1,"id":"h","resume":"` + w.Resume + `"}`

	r := b.raw(nil)
	r.send(hello)
	got := r.answer("h")
	if got.Session != w.Session || got.Resumed == nil || *got.Resumed {
		t.Fatalf("bridge b: session %q resumed %v; want %q, not resumed", got.Session, got.Resumed, w.Session)
	}
	if got.Resume != w.Resume {
		t.Fatalf("bridge b made token %q for the session; bridge a made %q", got.Resume, w.Resume)
	}

	r = other.raw(nil)
	r.send(hello)
	if got := r.answer("h"); got.Session == w.Session {
		t.Fatal("a bridge with another key honoured the token")
	}

	// The token is worth nothing to another identity.
	c := newEnv(t, nil, bridge.SessionKey(key), bridge.Authenticate(bearer))
	r = c.raw(bearerHeader("mallory"))
	r.send(hello)
	if got := r.answer("h"); got.Session == w.Session {
		t.Fatal("another identity took the session over")
	}

	if _, err := bridge.New(newBusT(t), bridge.SessionKey([]byte("short"))); err == nil {
		t.Fatal("a 5-byte SessionKey was accepted")
	}
}

func newBusT(t *testing.T) *bus.Bus {
	b, err := bus.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
