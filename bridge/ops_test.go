package bridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
)

// opsEnv is the bridge the op table runs against: topics, rooms,
// endpoints and hooks for every case.
func opsEnv(t testing.TB, extra ...bridge.Option) *env {
	opts := []bridge.Option{
		bridge.StrikeLimit(100, 1000), // the shared connection errs on purpose
		bridge.Expose("chat.>", bridge.Subscribe, bridge.Publish),
		bridge.Expose("typed.>", bridge.Subscribe, bridge.Publish),
		bridge.Expose("hist.>", bridge.Subscribe, bridge.Publish),
		bridge.Expose("broken.>", bridge.Publish),
		bridge.Expose("rpc.>", bridge.Request),
		bridge.ExposeRooms("lobby", bridge.Join, bridge.Presence),
		bridge.ExposeRooms("quiet", bridge.Join),
		bridge.Authorize(func(_ context.Context, id bridge.Identity, a bridge.Action, name string) error {
			if name == "chat.secret" {
				return errors.New("no secrets")
			}
			return nil
		}),
		bridge.HelloAuth(func(_ context.Context, id bridge.Identity, auth json.RawMessage) (bridge.Identity, error) {
			var a struct{ User string }
			if len(auth) > 0 {
				if err := json.Unmarshal(auth, &a); err != nil || a.User == "mallory" {
					return id, bridge.ErrUnauthorized
				}
			}
			id.ID = a.User
			return id, nil
		}),
	}
	e := newEnv(t, []bus.Option{bus.WithStore(&brokenStore{Store: bus.NewMemoryStore()})}, append(opts, extra...)...)
	if _, err := bus.NewTopic[int](e.bus, "typed.num"); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.NewTopic[json.RawMessage](e.bus, "hist.small", bus.Ephemeral(), bus.History(4, 0)); err != nil {
		t.Fatal(err)
	}
	add, _ := bus.NewEndpoint[[2]int, int](e.bus, "rpc.add")
	h1, _ := add.Handle(func(_ context.Context, r [2]int) (int, error) { return r[0] + r[1], nil })
	fail, _ := bus.NewEndpoint[int, int](e.bus, "rpc.fail")
	h2, _ := fail.Handle(func(context.Context, int) (int, error) { return 0, errors.New("it broke") })
	slow, _ := bus.NewEndpoint[int, int](e.bus, "rpc.slow")
	h3, _ := slow.Handle(func(ctx context.Context, _ int) (int, error) { <-ctx.Done(); return 0, ctx.Err() })
	t.Cleanup(func() { h1.Stop(); h2.Stop(); h3.Stop() })
	return e
}

// brokenStore fails every append to topics starting with "broken.".
type brokenStore struct{ bus.Store }

func (s *brokenStore) Append(ctx context.Context, topic string, r bus.Record) (uint64, error) {
	if strings.HasPrefix(topic, "broken.") {
		return 0, errors.New("disk on fire")
	}
	return s.Store.Append(ctx, topic, r)
}

// codeSeen records the error codes and close codes the table produced.
type codeSeen struct {
	mu    sync.Mutex
	codes map[string]bool
}

func (c *codeSeen) add(code string) {
	c.mu.Lock()
	c.codes[code] = true
	c.mu.Unlock()
}

func errCode(t *testing.T, seen *codeSeen, r *rawConn, id, want string) wire.Frame {
	t.Helper()
	f := r.answer(id)
	if f.Op != wire.OpError || f.Code != want {
		t.Fatalf("answer to %s: got %+v, want error %s", id, f, want)
	}
	seen.add(want)
	return f
}

func errNoID(t *testing.T, seen *codeSeen, r *rawConn, want string) {
	t.Helper()
	r.expect("error "+want, func(f *wire.Frame) bool { return f.Op == wire.OpError && f.ID == "" && f.Code == want })
	seen.add(want)
}

func answerOp(t *testing.T, r *rawConn, id, op string) wire.Frame {
	t.Helper()
	f := r.answer(id)
	if f.Op != op {
		t.Fatalf("answer to %s: got %+v, want %s", id, f, op)
	}
	return f
}

func closeCode(t *testing.T, seen *codeSeen, r *rawConn, want int) {
	t.Helper()
	if got := r.closed(); got != want {
		t.Fatalf("close code %d, want %d", got, want)
	}
	seen.add(fmt.Sprint(want))
}

// TestOps drives every op, every error code and every close code through
// a real socket on 127.0.0.1, and checks after each case that the
// connection (when it was not meant to close) still answers.
func TestOps(t *testing.T) {
	seen := &codeSeen{codes: map[string]bool{}}
	shared := opsEnv(t)
	sr, welcome := shared.rawHello()
	if welcome.Op != wire.OpWelcome || welcome.Session == "" || welcome.Resume == "" || welcome.Limits == nil {
		t.Fatalf("welcome: %+v", welcome)
	}
	for _, tc := range []struct {
		name   string
		opts   []bridge.Option // a fresh bridge and connection without hello, when set or fresh
		fresh  bool
		closes bool
		run    func(t *testing.T, e *env, r *rawConn)
	}{
		{name: "ping", run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"ping","id":"p1"}`)
			answerOp(t, r, "p1", wire.OpPong)
			r.send(`{"op":"ping"}`)
			r.op(wire.OpPong)
		}},
		{name: "bad json", run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":`)
			errNoID(t, seen, r, wire.CodeBadJSON)
			r.send(`[{"op":"ping","id":"a1"},5]`)
			answerOp(t, r, "a1", wire.OpPong)
			errNoID(t, seen, r, wire.CodeBadJSON)
			if err := r.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2}); err != nil {
				t.Fatal(err)
			}
			errNoID(t, seen, r, wire.CodeBadJSON)
		}},
		{name: "unknown op", run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"fly","id":"u1"}`)
			errCode(t, seen, r, "u1", wire.CodeUnknownOp)
			r.send(`{"op":"welcome","id":"u2"}`)
			errCode(t, seen, r, "u2", wire.CodeUnknownOp)
		}},
		{name: "bad frame", run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"subscribe","id":"b1","sub":"x","pattern":"chat.a","max_inflight":"many"}`)
			errCode(t, seen, r, "b1", wire.CodeBadFrame)
			r.send(`{"op":"publish","id":"b2","topic":"chat.a"}`)
			errCode(t, seen, r, "b2", wire.CodeBadFrame)
			r.send(`{"op":"hello","v":1,"id":"b3"}`)
			errCode(t, seen, r, "b3", wire.CodeBadFrame)
			r.send(`{"op":"subscribe","id":"b4","sub":"x","pattern":"chat.*","start":"first"}`)
			errCode(t, seen, r, "b4", wire.CodeBadFrame)
			r.send(`{"op":"subscribe","id":"b5","sub":"x","pattern":"chat.a","start":"yesterday"}`)
			errCode(t, seen, r, "b5", wire.CodeBadFrame)
			r.send(`{"id":"b6"}`)
			errCode(t, seen, r, "b6", wire.CodeBadFrame)
		}},
		{name: "invalid names", run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"subscribe","id":"i1","sub":"x","pattern":"chat..a"}`)
			errCode(t, seen, r, "i1", wire.CodeInvalidName)
			r.send(`{"op":"subscribe","id":"i2","sub":"bad id","pattern":"chat.a"}`)
			errCode(t, seen, r, "i2", wire.CodeInvalidName)
			r.send(`{"op":"publish","id":"i3","topic":"$rooms.lobby","data":1}`)
			errCode(t, seen, r, "i3", wire.CodeInvalidName)
			r.send(`{"op":"publish","id":"i4","topic":"chat.*","data":1}`)
			errCode(t, seen, r, "i4", wire.CodeInvalidName)
			r.send(`{"op":"join","id":"i5","rooms":["a..b"]}`)
			errCode(t, seen, r, "i5", wire.CodeInvalidName)
		}},
		{name: "forbidden", run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"subscribe","id":"f1","sub":"x","pattern":"admin.x"}`)
			errCode(t, seen, r, "f1", wire.CodeForbidden)
			r.send(`{"op":"publish","id":"f2","topic":"chat.secret","data":1}`)
			errCode(t, seen, r, "f2", wire.CodeForbidden)
			r.send(`{"op":"subscribe","id":"f3","sub":"x","pattern":">"}`)
			errCode(t, seen, r, "f3", wire.CodeForbidden)
			r.send(`{"op":"publish","id":"f4","topic":"rpc.add","data":1}`)
			errCode(t, seen, r, "f4", wire.CodeForbidden)
			r.send(`{"op":"publish","id":"f5","topic":"chat.a","data":1,"to":["secret"]}`)
			errCode(t, seen, r, "f5", wire.CodeForbidden)
			r.send(`{"op":"join","id":"f6","rooms":["secret"]}`)
			errCode(t, seen, r, "f6", wire.CodeForbidden)
			r.send(`{"op":"presence","id":"f7","room":"quiet"}`)
			errCode(t, seen, r, "f7", wire.CodeForbidden)
			r.send(`{"op":"request","id":"f8","topic":"chat.a","data":1}`)
			errCode(t, seen, r, "f8", wire.CodeForbidden)
		}},
		{name: "subscribe publish ack", run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"subscribe","id":"s1","sub":"s1","pattern":"chat.a","max_inflight":8}`)
			answerOp(t, r, "s1", wire.OpSubscribed)
			r.send(`{"op":"subscribe","id":"s2","sub":"s1","pattern":"chat.b"}`)
			errCode(t, seen, r, "s2", wire.CodeConflict)
			r.send(`{"op":"publish","id":"s3","topic":"chat.a","data":{"text":"hi"},"headers":{"k":"v"}}`)
			pub := answerOp(t, r, "s3", wire.OpPuback)
			m := r.op(wire.OpMessage)
			if m.Sub != "s1" || m.N == 0 || m.Seq != pub.Seq || m.Epoch != pub.Epoch || string(m.Data) != `{"text":"hi"}` || m.Headers["k"] != "v" {
				t.Fatalf("message %+v, puback %+v", m, pub)
			}
			r.send(fmt.Sprintf(`{"op":"ack","id":"s4","sub":"s1","n":%d}`, m.N))
			answerOp(t, r, "s4", wire.OpOK)
			r.send(`{"op":"ack","id":"s5","sub":"nope","n":1}`)
			errCode(t, seen, r, "s5", wire.CodeNotFound)
			r.send(`{"op":"ack","id":"s6","sub":"s1"}`)
			errCode(t, seen, r, "s6", wire.CodeBadFrame)
			// nack: the delivery comes again as attempt 2.
			r.send(`{"op":"publish","topic":"chat.a","data":2}`)
			m = r.op(wire.OpMessage)
			r.send(fmt.Sprintf(`{"op":"nack","sub":"s1","n":%d}`, m.N))
			again := r.op(wire.OpMessage)
			if again.Seq != m.Seq || again.Attempt != 2 || again.N <= m.N {
				t.Fatalf("redelivery %+v of %+v", again, m)
			}
			r.send(fmt.Sprintf(`{"op":"ack","sub":"s1","upto":%d}`, again.N))
			r.send(`{"op":"unsubscribe","id":"s7","sub":"s1"}`)
			answerOp(t, r, "s7", wire.OpOK)
			r.send(`{"op":"unsubscribe","id":"s8","sub":"s1"}`)
			errCode(t, seen, r, "s8", wire.CodeNotFound)
		}},
		{name: "type mismatch", run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"publish","id":"t1","topic":"typed.num","data":"seven"}`)
			errCode(t, seen, r, "t1", wire.CodeTypeMismatch)
			r.send(`{"op":"publish","id":"t2","topic":"typed.num","data":7}`)
			answerOp(t, r, "t2", wire.OpPuback)
		}},
		{name: "history lost", run: func(t *testing.T, e *env, r *rawConn) {
			for i := range 10 {
				if _, err := e.bus.PublishRaw(context.Background(), "hist.small", []byte(fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
			}
			r.send(`{"op":"subscribe","id":"h1","sub":"h1","pattern":"hist.small","start":"seq","seq":2}`)
			a := answerOp(t, r, "h1", wire.OpSubscribed)
			if a.Recovered == nil || *a.Recovered || a.Seq != 10 {
				t.Fatalf("subscribed %+v, want recovered false at 10", a)
			}
			rs := r.op(wire.OpResync)
			if rs.Sub != "h1" || rs.Seq != 7 || rs.Topic != "hist.small" {
				t.Fatalf("resync %+v, want seq 7", rs)
			}
			for want := uint64(7); want <= 10; want++ {
				m := r.op(wire.OpMessage)
				if m.Seq != want {
					t.Fatalf("message seq %d, want %d", m.Seq, want)
				}
				r.send(fmt.Sprintf(`{"op":"ack","sub":"h1","n":%d}`, m.N))
			}
			r.send(`{"op":"unsubscribe","id":"h2","sub":"h1"}`)
			answerOp(t, r, "h2", wire.OpOK)
		}},
		{name: "rooms and presence", run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"join","id":"r1","rooms":["lobby"]}`)
			answerOp(t, r, "r1", wire.OpOK)
			r.send(`{"op":"presence","id":"r2","room":"lobby","watch":true}`)
			p := answerOp(t, r, "r2", wire.OpPresence)
			if len(p.Members) != 1 {
				t.Fatalf("presence %+v", p)
			}
			other := e.raw(nil)
			other.send(`{"op":"hello","v":1,"id":"h","auth":{"user":"bob"}}`)
			ow := other.answer("h")
			other.send(`{"op":"join","id":"j","rooms":["lobby"]}`)
			answerOp(t, other, "j", wire.OpOK)
			ev := r.op(wire.OpPresenceEvent)
			if ev.Room != "lobby" || ev.Member != ow.Session || ev.User != "bob" || ev.Joined == nil || !*ev.Joined {
				t.Fatalf("presence event %+v", ev)
			}
			other.send(`{"op":"leave","id":"l","rooms":["lobby"]}`)
			answerOp(t, other, "l", wire.OpOK)
			ev = r.op(wire.OpPresenceEvent)
			if ev.Joined == nil || *ev.Joined {
				t.Fatalf("presence event %+v, want a leave", ev)
			}
			r.send(`{"op":"presence","id":"r3","room":"lobby","watch":false}`)
			answerOp(t, r, "r3", wire.OpPresence)
			r.send(`{"op":"leave","id":"r4","rooms":["lobby"]}`)
			answerOp(t, r, "r4", wire.OpOK)
			r.send(`{"op":"join","id":"r5"}`)
			errCode(t, seen, r, "r5", wire.CodeBadFrame)
		}},
		{name: "requests", run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"request","id":"q1","topic":"rpc.add","data":[2,3]}`)
			if a := answerOp(t, r, "q1", wire.OpReply); string(a.Data) != "5" {
				t.Fatalf("reply %+v", a)
			}
			r.send(`{"op":"request","id":"q2","topic":"rpc.none","data":1}`)
			errCode(t, seen, r, "q2", wire.CodeNoHandler)
			r.send(`{"op":"request","id":"q3","topic":"rpc.fail","data":1}`)
			if f := errCode(t, seen, r, "q3", wire.CodeFailed); !strings.Contains(f.Message, "it broke") {
				t.Fatalf("failed: %+v", f)
			}
			r.send(`{"op":"request","id":"q4","topic":"rpc.add","data":"x"}`)
			errCode(t, seen, r, "q4", wire.CodeTypeMismatch)
			r.send(`{"op":"request","topic":"rpc.add","data":[1,1]}`)
			errNoID(t, seen, r, wire.CodeBadFrame)
			r.send(`{"op":"request","id":"q5","topic":"rpc.slow","data":1,"timeout":50}`)
			errCode(t, seen, r, "q5", wire.CodeTimeout)
		}},
		{name: "server request", run: func(t *testing.T, e *env, r *rawConn) {
			type res struct {
				data []byte
				err  error
			}
			ask := func(data string) chan res {
				ch := make(chan res, 1)
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					d, err := e.br.Request(ctx, welcome.Session, "ui.ask", []byte(data))
					ch <- res{d, err}
				}()
				return ch
			}
			ch := ask(`{"q":1}`)
			q := r.op(wire.OpRequest)
			if q.Topic != "ui.ask" || string(q.Data) != `{"q":1}` || q.ID == "" {
				t.Fatalf("request %+v", q)
			}
			r.send(fmt.Sprintf(`{"op":"reply","id":%q,"data":{"a":2}}`, q.ID))
			if got := <-ch; got.err != nil || string(got.data) != `{"a":2}` {
				t.Fatalf("Request: %s, %v", got.data, got.err)
			}
			ch = ask(`2`)
			q = r.op(wire.OpRequest)
			r.send(fmt.Sprintf(`{"op":"reply","id":%q,"code":"no_handler","message":"nope"}`, q.ID))
			var re *bridge.ReplyError
			if got := <-ch; !errors.As(got.err, &re) || re.Code != "no_handler" {
				t.Fatalf("Request: %v, want a ReplyError", got.err)
			}
			r.send(`{"op":"reply","id":"zzz","data":1}`)
			errCode(t, seen, r, "zzz", wire.CodeNotFound)
		}},
		{name: "too large", run: func(t *testing.T, e *env, r *rawConn) {
			big := strings.Repeat("x", 70<<10)
			r.send(`{"op":"publish","id":"big","topic":"chat.a","data":"` + big + `"}`)
			errCode(t, seen, r, "big", wire.CodeTooLarge)
			// Under the frame limit, far over melody's default 512 bytes.
			r.send(`{"op":"publish","id":"ok","topic":"chat.a","data":"` + big[:60<<10] + `"}`)
			answerOp(t, r, "ok", wire.OpPuback)
		}},
		{name: "internal", run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"publish","id":"x1","topic":"broken.x","data":1}`)
			errCode(t, seen, r, "x1", wire.CodeInternal)
		}},
		{name: "hello required", fresh: true, run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"ping","id":"n1"}`)
			errCode(t, seen, r, "n1", wire.CodeHelloRequired)
			r.send(`{"op":"hello","v":1,"id":"h"}`)
			answerOp(t, r, "h", wire.OpWelcome)
		}},
		{name: "version", fresh: true, closes: true, run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"hello","v":2,"id":"h"}`)
			errCode(t, seen, r, "h", wire.CodeVersion)
			closeCode(t, seen, r, wire.CloseVersion)
		}},
		{name: "unauthorized hello", fresh: true, closes: true, run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"hello","v":1,"id":"h","auth":{"user":"mallory"}}`)
			errCode(t, seen, r, "h", wire.CodeUnauthorized)
			closeCode(t, seen, r, wire.CloseUnauthorized)
		}},
		{name: "rate limited", opts: []bridge.Option{bridge.RateLimit(0.01, 3)}, run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`[{"op":"hello","v":1,"id":"h"},{"op":"ping","id":"1"},{"op":"ping","id":"2"},{"op":"ping","id":"3"}]`)
			answerOp(t, r, "h", wire.OpWelcome)
			answerOp(t, r, "1", wire.OpPong)
			answerOp(t, r, "2", wire.OpPong)
			errCode(t, seen, r, "3", wire.CodeRateLimited)
		}},
		{name: "subscription limit", opts: []bridge.Option{bridge.MaxSubscriptions(1)}, run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"hello","v":1,"id":"h"}`)
			answerOp(t, r, "h", wire.OpWelcome)
			r.send(`{"op":"subscribe","id":"1","sub":"a","pattern":"chat.a"}`)
			answerOp(t, r, "1", wire.OpSubscribed)
			r.send(`{"op":"subscribe","id":"2","sub":"b","pattern":"chat.b"}`)
			errCode(t, seen, r, "2", wire.CodeLimit)
		}},
		{name: "strikes", opts: []bridge.Option{bridge.StrikeLimit(0.001, 3)}, closes: true, run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`[{"op":"hello","v":1,"id":"h"},{"op":"x"},{"op":"x"},{"op":"x"},{"op":"x"}]`)
			answerOp(t, r, "h", wire.OpWelcome)
			errNoID(t, seen, r, wire.CodeUnknownOp)
			closeCode(t, seen, r, wire.CloseBadFrames)
		}},
		{name: "message too big", fresh: true, closes: true, run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"hello","v":1,"id":"h"}`)
			answerOp(t, r, "h", wire.OpWelcome)
			r.ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"ping","data":"`+strings.Repeat("y", 300<<10)+`"}`))
			closeCode(t, seen, r, websocket.CloseMessageTooBig)
		}},
		{name: "hello timeout", opts: []bridge.Option{bridge.HandshakeTimeout(100 * time.Millisecond)}, closes: true, run: func(t *testing.T, e *env, r *rawConn) {
			closeCode(t, seen, r, wire.CloseHelloTimeout)
		}},
		{name: "bye", fresh: true, closes: true, run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"hello","v":1,"id":"h"}`)
			w := answerOp(t, r, "h", wire.OpWelcome)
			r.send(`{"op":"bye"}`)
			closeCode(t, seen, r, wire.CloseNormal)
			if _, ok := e.br.Identity(w.Session); ok {
				t.Fatal("session outlived bye")
			}
		}},
		{name: "replaced", fresh: true, closes: true, run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"hello","v":1,"id":"h"}`)
			w := answerOp(t, r, "h", wire.OpWelcome)
			r2 := e.raw(nil)
			r2.send(fmt.Sprintf(`{"op":"hello","v":1,"id":"h","resume":%q}`, w.Resume))
			w2 := answerOp(t, r2, "h", wire.OpWelcome)
			if w2.Session != w.Session || w2.Resumed == nil || !*w2.Resumed {
				t.Fatalf("resume: %+v", w2)
			}
			closeCode(t, seen, r, wire.CloseReplaced)
			r2.alive()
		}},
		{name: "unavailable", fresh: true, run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"hello","v":1,"id":"h"}`)
			answerOp(t, r, "h", wire.OpWelcome)
			e.bus.Close()
			r.send(`{"op":"publish","id":"u","topic":"chat.a","data":1}`)
			errCode(t, seen, r, "u", wire.CodeUnavailable)
		}},
		{name: "close", fresh: true, closes: true, run: func(t *testing.T, e *env, r *rawConn) {
			r.send(`{"op":"hello","v":1,"id":"h"}`)
			answerOp(t, r, "h", wire.OpWelcome)
			go e.br.Shutdown(context.Background())
			closeCode(t, seen, r, wire.CloseGoingAway)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, r := shared, sr
			if tc.opts != nil || tc.fresh {
				e = opsEnv(t, tc.opts...)
				r = e.raw(nil)
			}
			r.t = t
			tc.run(t, e, r)
			if !tc.closes {
				r.alive()
			}
			if e != shared {
				e.close()
			}
		})
	}
	sr.t = t
	sr.alive()

	var missing []string
	for _, code := range []string{
		wire.CodeBadJSON, wire.CodeBadFrame, wire.CodeUnknownOp, wire.CodeVersion, wire.CodeHelloRequired,
		wire.CodeUnauthorized, wire.CodeForbidden, wire.CodeInvalidName, wire.CodeTypeMismatch, wire.CodeTooLarge,
		wire.CodeRateLimited, wire.CodeLimit, wire.CodeConflict, wire.CodeNotFound, wire.CodeNoHandler,
		wire.CodeTimeout, wire.CodeFailed, wire.CodeUnavailable, wire.CodeInternal,
		fmt.Sprint(wire.CloseNormal), fmt.Sprint(wire.CloseGoingAway), fmt.Sprint(wire.CloseTooBig),
		fmt.Sprint(wire.CloseBadFrames), fmt.Sprint(wire.CloseUnauthorized), fmt.Sprint(wire.CloseHelloTimeout),
		fmt.Sprint(wire.CloseReplaced), fmt.Sprint(wire.CloseVersion),
	} {
		if !seen.codes[code] {
			missing = append(missing, code)
		}
	}
	if len(missing) > 0 {
		t.Errorf("codes never produced: %v", missing)
	}
}
