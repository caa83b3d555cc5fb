package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
)

// sessionInfo returns the bridge's SessionInfo of id.
func sessionInfo(t *testing.T, br *bridge.Bridge, id string) (bridge.SessionInfo, bool) {
	t.Helper()
	for _, si := range br.Sessions() {
		if si.ID == id {
			return si, true
		}
	}
	return bridge.SessionInfo{}, false
}

// TestDisconnect: Disconnect closes the connection with 4009 and keeps
// the session, which the client resumes with what it had not
// acknowledged; it refuses sessions that are detached, ended or unknown.
func TestDisconnect(t *testing.T) {
	e := newEnv(t, nil, bridge.Expose("d.>", bridge.Subscribe))
	r, w := e.rawHello()
	r.send(`{"op":"subscribe","id":"s","sub":"s","pattern":"d.x"}`)
	r.answer("s")
	e.bus.PublishRaw(ctxT(t), "d.x", []byte(`1`))
	if m := r.op(wire.OpMessage); m.Seq != 1 {
		t.Fatalf("got seq %d, want 1", m.Seq)
	}
	if err := e.br.Disconnect(w.Session); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	if code := r.closed(); code != wire.CloseDisconnected {
		t.Fatalf("closed with %d, want %d", code, wire.CloseDisconnected)
	}
	waitUntil(t, func() bool {
		si, ok := sessionInfo(t, e.br, w.Session)
		return ok && !si.Connected
	})
	for _, tc := range []struct {
		name string
		id   string
		want error
	}{
		{"detached", w.Session, bridge.ErrNotConnected},
		{"unknown", "no-such-session", bridge.ErrNoSession},
	} {
		if err := e.br.Disconnect(tc.id); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}

	// The client comes back: same session, the unacknowledged message again.
	r2 := e.raw(nil)
	r2.send(`{"op":"hello","v":1,"id":"h","resume":"` + w.Resume + `"}`)
	if w2 := r2.answer("h"); !*w2.Resumed || w2.Session != w.Session {
		t.Fatalf("welcome %+v, want session %s resumed", w2, w.Session)
	}
	if m := r2.op(wire.OpMessage); m.Seq != 1 || m.Attempt != 2 {
		t.Fatalf("after the resume got seq %d attempt %d, want seq 1 attempt 2", m.Seq, m.Attempt)
	}
	if si, _ := sessionInfo(t, e.br, w.Session); !si.Connected || si.Resumes != 1 {
		t.Fatalf("after the resume: %+v, want connected with 1 resume", si)
	}

	r2.send(`{"op":"bye"}`)
	r2.closed()
	waitUntil(t, func() bool { return e.br.Stats().Sessions == 0 })
	if err := e.br.Disconnect(w.Session); !errors.Is(err, bridge.ErrNoSession) {
		t.Errorf("after bye: got %v, want %v", err, bridge.ErrNoSession)
	}
}

// TestDisconnectGoClient: the Go client treats 4009 as "reconnect and
// resume": it comes back in the same session, and does not stop.
func TestDisconnectGoClient(t *testing.T) {
	e := newEnv(t, nil, bridge.Expose("d.>", bridge.Subscribe))
	events := make(chan client.Event, 16)
	c := e.dial(client.ReconnectBackoff(time.Millisecond, 5*time.Millisecond),
		client.OnEvent(func(ev client.Event) { events <- ev }))
	next := func() client.Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
			return client.Event{}
		}
	}
	if ev := next(); ev.Type != client.Connected {
		t.Fatalf("first event %+v, want connected", ev)
	}
	in := newInbox()
	if _, err := c.Subscribe(ctxT(t), "d.x", in.handle); err != nil {
		t.Fatal(err)
	}
	sid := c.SessionID()
	if err := e.br.Disconnect(sid); err != nil {
		t.Fatal(err)
	}
	ev := next()
	var ce *websocket.CloseError
	if ev.Type != client.Disconnected || !errors.As(ev.Err, &ce) || ce.Code != wire.CloseDisconnected {
		t.Fatalf("got %+v, want disconnected with close code %d", ev, wire.CloseDisconnected)
	}
	if ev := next(); ev.Type != client.Connected || !ev.Resumed || ev.Session != sid {
		t.Fatalf("got %+v, want connected and resumed in session %s", ev, sid)
	}
	e.bus.PublishRaw(ctxT(t), "d.x", []byte(`1`))
	in.wait(t, 1)
}

// TestSessions lists sessions with their state, rooms, subscriptions and
// resumes, sorted by id.
func TestSessions(t *testing.T) {
	e := newEnv(t, nil, bridge.Expose("s.>", bridge.Subscribe), bridge.ExposeRooms(">", bridge.Join))
	start := time.Now()
	r1, w1 := e.rawHello()
	r2, w2 := e.rawHello()
	r1.send(`[{"op":"join","id":"j","rooms":["b","a"]},{"op":"subscribe","id":"s1","sub":"s1","pattern":"s.x"},` +
		`{"op":"subscribe","id":"s2","sub":"s2","pattern":"s.>"}]`)
	r1.answer("j")
	r1.answer("s1")
	r1.answer("s2")

	list := e.br.Sessions()
	if len(list) != 2 || !slices.IsSortedFunc(list, func(x, y bridge.SessionInfo) int { return strings.Compare(x.ID, y.ID) }) {
		t.Fatalf("got %+v, want 2 sessions sorted by id", list)
	}
	si, _ := sessionInfo(t, e.br, w1.Session)
	if !si.Connected || si.Subscriptions != 2 || !slices.Equal(si.Rooms, []string{"a", "b"}) || si.Resumes != 0 ||
		si.Remote == "" || si.Since.Before(start.Add(-time.Second)) || si.Since.After(time.Now().Add(time.Second)) {
		t.Errorf("session 1: %+v", si)
	}
	if si, _ := sessionInfo(t, e.br, w2.Session); !si.Connected || si.Subscriptions != 0 || len(si.Rooms) != 0 {
		t.Errorf("session 2: %+v", si)
	}

	r1.ws.Close() // no bye: the session waits for a resume
	waitUntil(t, func() bool { si, _ := sessionInfo(t, e.br, w1.Session); return !si.Connected })
	detached, _ := sessionInfo(t, e.br, w1.Session)
	if detached.Remote != "" || detached.Since.Before(si.Since) || detached.Subscriptions != 2 {
		t.Errorf("detached: %+v, connected before: %+v", detached, si)
	}
	r3 := e.raw(nil)
	r3.send(`{"op":"hello","v":1,"id":"h","resume":"` + w1.Resume + `"}`)
	r3.answer("h")
	if si, _ := sessionInfo(t, e.br, w1.Session); !si.Connected || si.Resumes != 1 || si.Remote == "" {
		t.Errorf("resumed: %+v", si)
	}
	r2.send(`{"op":"bye"}`)
	r2.closed()
	waitUntil(t, func() bool { return len(e.br.Sessions()) == 1 })
}

// TestStatsCounters checks the frame, error and resume counters.
func TestStatsCounters(t *testing.T) {
	e := newEnv(t, []bus.Option{bus.History(5, 0)}, bridge.Expose("n.>", bridge.Subscribe))
	r, w := e.rawHello() // in: hello; out: welcome
	r.send(`[{"op":"ping","id":"a"},{"op":"ping","id":"b"}]`)
	r.answer("a")
	r.answer("b")
	r.send(`{"op":"publish","id":"p","topic":"n.x","data":1}`) // not exposed for publish
	if f := r.answer("p"); f.Code != wire.CodeForbidden {
		t.Fatalf("got %+v, want forbidden", f)
	}
	st := e.br.Stats()
	if st.FramesIn != 4 || st.FramesOut != 4 {
		t.Errorf("frames in %d, out %d; want 4 and 4", st.FramesIn, st.FramesOut)
	}
	if len(st.ErrorFrames) != wire.NumCodes {
		t.Errorf("ErrorFrames has %d codes, want all %d", len(st.ErrorFrames), wire.NumCodes)
	}
	for code, n := range st.ErrorFrames {
		want := uint64(0)
		if code == wire.CodeForbidden {
			want = 1
		}
		if n != want {
			t.Errorf("ErrorFrames[%s] = %d, want %d", code, n, want)
		}
	}

	// A token that finds no session.
	r2 := e.raw(nil)
	r2.send(`{"op":"hello","v":1,"id":"h","resume":"x.y"}`)
	if w2 := r2.answer("h"); *w2.Resumed {
		t.Fatal("a bogus token resumed a session")
	}
	// A resume whose history moved on.
	r.send(`{"op":"subscribe","id":"s","sub":"s","pattern":"n.x"}`)
	r.answer("s")
	r.ws.Close()
	waitUntil(t, func() bool { si, _ := sessionInfo(t, e.br, w.Session); return !si.Connected })
	for i := range 10 {
		e.bus.PublishRaw(context.Background(), "n.x", []byte(fmt.Sprint(i)))
	}
	r3 := e.raw(nil)
	r3.send(`{"op":"hello","v":1,"id":"h","resume":"` + w.Resume + `"}`)
	if w3 := r3.answer("h"); !*w3.Resumed || len(w3.Subs) != 1 || w3.Subs[0].Recovered {
		t.Fatalf("welcome %+v, want resumed with s not recovered", w3)
	}
	st = e.br.Stats()
	if st.Resumed != 1 || st.ResumesUnrecovered != 1 || st.ResumesFailed != 1 {
		t.Errorf("resumed %d, unrecovered %d, failed %d; want 1 each", st.Resumed, st.ResumesUnrecovered, st.ResumesFailed)
	}
}
