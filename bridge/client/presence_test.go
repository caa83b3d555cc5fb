package client_test

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bridge/internal/wire"
)

// wsPeer is a client of the bridge written from the protocol, whose socket
// the test drops at will.
type wsPeer struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialPeer(t *testing.T, url string) *wsPeer {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return &wsPeer{t: t, ws: ws}
}

// call sends frame and returns the answer to its id "x".
func (p *wsPeer) call(frame string) wire.Frame {
	p.t.Helper()
	if err := p.ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		p.t.Fatal(err)
	}
	p.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, msg, err := p.ws.ReadMessage()
		if err != nil {
			p.t.Fatalf("waiting for the answer to %s: %v", frame, err)
		}
		raws, err := wire.Split(msg)
		if err != nil {
			p.t.Fatal(err)
		}
		for _, raw := range raws {
			if f, err := wire.Parse(raw); err == nil && f.ID == "x" {
				return f
			}
		}
	}
}

// TestPresenceAway: a member whose connection drops is shown away at once,
// in the events and in the list, and back when it resumes; it leaves when
// it ends its session.
func TestPresenceAway(t *testing.T) {
	_, url := server(t, bridge.ExposeRooms(">", bridge.Join, bridge.Presence))
	alice := dialPeer(t, url)
	w := alice.call(`{"op":"hello","v":1,"id":"x"}`)
	if f := alice.call(`{"op":"join","id":"x","rooms":["lobby"]}`); f.Op != wire.OpOK {
		t.Fatalf("join: %+v", f)
	}

	bob, err := client.Dial(ctxT(t), url)
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	events := make(chan client.PresenceEvent, 8)
	ms, err := bob.WatchPresence(ctxT(t), "lobby", func(ev client.PresenceEvent) { events <- ev })
	if err != nil || len(ms) != 1 || ms[0] != (client.Member{Member: w.Session}) {
		t.Fatalf("members: %+v, %v; want alice, not away", ms, err)
	}
	next := func(want client.PresenceEvent) {
		t.Helper()
		select {
		case ev := <-events:
			if ev != want {
				t.Fatalf("got event %+v, want %+v", ev, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event; want %+v", want)
		}
	}

	alice.ws.Close() // the network drops
	next(client.PresenceEvent{Room: "lobby", Member: w.Session, Joined: true, Away: true})
	if ms, err := bob.Presence(ctxT(t), "lobby"); err != nil || len(ms) != 1 || !ms[0].Away {
		t.Fatalf("members while alice is away: %+v, %v", ms, err)
	}

	alice = dialPeer(t, url)
	if f := alice.call(`{"op":"hello","v":1,"id":"x","resume":"` + w.Resume + `"}`); f.Resumed == nil || !*f.Resumed {
		t.Fatalf("resume: %+v", f)
	}
	next(client.PresenceEvent{Room: "lobby", Member: w.Session, Joined: true, Away: false})
	if ms, err := bob.Presence(ctxT(t), "lobby"); err != nil || len(ms) != 1 || ms[0].Away {
		t.Fatalf("members after alice resumed: %+v, %v", ms, err)
	}

	if err := alice.ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"bye"}`)); err != nil {
		t.Fatal(err)
	}
	next(client.PresenceEvent{Room: "lobby", Member: w.Session, Joined: false})
}
