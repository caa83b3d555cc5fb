package bridge_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
)

// TestResumeWindowExpires: a session whose client does not come back
// within the window ends, and its member leaves its rooms.
func TestResumeWindowExpires(t *testing.T) {
	e := newEnv(t, nil, bridge.ExposeRooms("lobby", bridge.Join), bridge.ResumeWindow(100*time.Millisecond))
	events := make(chan bus.RoomEvent, 4)
	sub, err := e.bus.Subscribe(bus.RoomTopic("lobby"), func(_ context.Context, m bus.Message[any]) error {
		events <- m.Value.(bus.RoomEvent)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	r, w := e.rawHello()
	r.send(`{"op":"join","id":"j","rooms":["lobby"]}`)
	r.answer("j")
	if ev := <-events; !ev.Joined || ev.Member != w.Session {
		t.Fatalf("join event %+v", ev)
	}
	r.ws.Close() // no bye: the session waits for a resume
	select {
	case ev := <-events:
		if ev.Joined || ev.Member != w.Session {
			t.Fatalf("leave event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the member did not leave when the resume window passed")
	}
	waitUntil(t, func() bool { return e.br.Stats().Sessions == 0 })
	if m := e.bus.RoomMembers("lobby"); len(m) != 0 {
		t.Fatalf("lobby members %v", m)
	}
	// The token is worth nothing now.
	r2 := e.raw(nil)
	r2.send(`{"op":"hello","v":1,"id":"h","resume":"` + w.Resume + `"}`)
	if w2 := r2.answer("h"); *w2.Resumed || w2.Session == w.Session {
		t.Fatalf("expired session resumed: %+v", w2)
	}
}

// TestAckWait: a delivery that is not acknowledged comes again after the
// subscription's ack wait, and acknowledged ones never do.
func TestAckWait(t *testing.T) {
	e := newEnv(t, nil, bridge.Expose("w.>", bridge.Subscribe))
	r, _ := e.rawHello()
	r.send(`{"op":"subscribe","id":"s","sub":"s","pattern":"w.x","ack_wait":100}`)
	r.answer("s")
	e.bus.PublishRaw(context.Background(), "w.x", []byte(`1`))
	e.bus.PublishRaw(context.Background(), "w.x", []byte(`2`))
	m1, m2 := r.op(wire.OpMessage), r.op(wire.OpMessage)
	r.send(fmt.Sprintf(`{"op":"ack","sub":"s","n":%d}`, m2.N))
	again := r.op(wire.OpMessage)
	if again.Seq != m1.Seq || again.Attempt != 2 {
		t.Fatalf("redelivery %+v, want seq %d attempt 2", again, m1.Seq)
	}
	r.send(fmt.Sprintf(`{"op":"ack","sub":"s","n":%d}`, again.N))
	// Nothing else comes: a third publish arrives next.
	e.bus.PublishRaw(context.Background(), "w.x", []byte(`3`))
	if m := r.op(wire.OpMessage); m.Seq != 3 {
		t.Fatalf("got seq %d, want 3", m.Seq)
	}
}

// TestGarbage sends random bytes and mangled frames: each gets an error
// frame or is ignored, the connection survives, and so does the process.
func TestGarbage(t *testing.T) {
	e := newEnv(t, nil, bridge.Expose(">", bridge.Subscribe, bridge.Publish, bridge.Request),
		bridge.ExposeRooms(">", bridge.Join, bridge.Presence), bridge.StrikeLimit(1e6, 1e6), bridge.RateLimit(1e6, 1e6))
	r, _ := e.rawHello()
	seeds := []string{
		`{"op":"subscribe","id":"1","sub":"a","pattern":"x.>","start":"after","epoch":"5","seq":3}`,
		`{"op":"publish","id":"2","topic":"x.y","data":{"a":[1,2]},"to":["r"],"except_self":true}`,
		`{"op":"ack","sub":"a","upto":99}`, `{"op":"nack","sub":"a","n":1,"delay":-5}`,
		`{"op":"join","id":"3","rooms":["r","s"]}`, `{"op":"presence","id":"4","room":"r","watch":true}`,
		`{"op":"request","id":"5","topic":"x.z","data":null,"timeout":-1}`, `{"op":"reply","id":"s1","data":1}`,
		`{"op":"unsubscribe","id":"6","sub":"a"}`, `[{"op":"ping"},{"op":"ping","id":7}]`,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 400 {
		var msg []byte
		switch i % 3 {
		case 0:
			msg = make([]byte, rng.IntN(64))
			for j := range msg {
				msg[j] = byte(rng.IntN(256))
			}
		default:
			msg = []byte(seeds[rng.IntN(len(seeds))])
			for range 1 + rng.IntN(4) {
				if len(msg) > 0 {
					msg[rng.IntN(len(msg))] = "{}[]\":,0a-$*>.\\"[rng.IntN(15)]
				}
			}
		}
		if err := r.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			t.Fatalf("message %d (%q): %v", i, msg, err)
		}
	}
	r.send(`{"op":"bye","id":"unused"}`)
	for {
		if err := r.read(10 * time.Second); err != nil {
			if !websocket.IsCloseError(err, wire.CloseNormal) {
				t.Fatalf("connection ended with %v, want the bye's close", err)
			}
			break
		}
	}
	r2, w := e.rawHello()
	if !strings.HasPrefix(w.Op, "welcome") {
		t.Fatalf("after the garbage: %+v", w)
	}
	r2.alive()
}

// TestResumeBacklogOverLimit: more unacknowledged bytes than the outbound
// limit are sent again after a resume as the queue drains, not at once
// (which would close the connection as slow on every resume).
func TestResumeBacklogOverLimit(t *testing.T) {
	e := newEnv(t, nil, bridge.Expose("big.>", bridge.Subscribe), bridge.OutboundLimit(16<<10))
	r, w := e.rawHello()
	r.send(`{"op":"subscribe","id":"s","sub":"s","pattern":"big.x","max_inflight":1000}`)
	r.answer("s")
	payload := []byte(`"` + strings.Repeat("p", 1000) + `"`)
	const n = 100
	for range n {
		if _, err := e.bus.PublishRaw(context.Background(), "big.x", payload); err != nil {
			t.Fatal(err)
		}
	}
	for range n { // read them all, ack none
		r.op(wire.OpMessage)
	}
	r.ws.Close()
	waitUntil(t, func() bool { return e.br.Stats().Connections == 0 })
	r2 := e.raw(nil)
	r2.send(`{"op":"hello","v":1,"id":"h","resume":"` + w.Resume + `"}`)
	if w2 := r2.answer("h"); !*w2.Resumed {
		t.Fatalf("not resumed: %+v", w2)
	}
	for want := uint64(1); want <= n; want++ {
		m := r2.op(wire.OpMessage)
		if m.Seq != want || m.Attempt != 2 {
			t.Fatalf("got seq %d attempt %d, want seq %d attempt 2", m.Seq, m.Attempt, want)
		}
		r2.send(fmt.Sprintf(`{"op":"ack","sub":"s","n":%d}`, m.N))
	}
	if s := e.br.Stats(); s.SlowDisconnects != 0 {
		t.Fatalf("stats %+v: a resume was closed as slow", s)
	}
}
