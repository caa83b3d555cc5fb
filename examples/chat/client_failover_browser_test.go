package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/courierbus/courier/bridge"
)

// Failover and dead connections in courier.js, against the bridges of
// client_browser_test.go.

// TestClientDeadConnection: a connection that goes silent without closing
// (a dead network path) is given up after two heartbeats of silence, and
// the client resumes on a new one without losing a message.
func TestClientDeadConnection(t *testing.T) {
	browser := startBrowser(t)
	s := newAPIServer(t, bridge.Heartbeat(time.Second))
	link := newCutter(t, strings.TrimPrefix(s.srv.URL, "http://"))
	p := newTab(t, browser, link.base()+"/", "api")
	script[bool](p, setup)
	script[bool](p, `
const c = await openClient('alice');
window.c = c;
c.got = [];
await c.subscribe('t.d', (d) => { c.got.push(d); }).ready;
return c.heartbeat === 1000;`)
	s.publish("t.d", "before")
	script[bool](p, `await until(() => c.got.length === 1, 'before'); return true;`)
	link.freeze()
	s.publish("t.d", "during")
	type result struct {
		Log  [][]any
		Got  []string
		Took int
	}
	r := script[result](p, `
const t0 = Date.now();
await until(() => c.log.some((e) => e[0] === 'disconnect'), 'the dead connection to be noticed');
const took = Date.now() - t0;
await until(() => c.got.length === 2 && c.connected, 'the message sent meanwhile');
return { log: c.log.map((e) => [e[0], e[2] && e[2].code, e[2] && e[2].resumed]), got: c.got, took };`)
	if strings.Join(r.Got, ",") != "before,during" {
		t.Errorf("got %v", r.Got)
	}
	if r.Took < 1000 || r.Took > 4000 {
		t.Errorf("the dead connection was noticed after %d ms, want between one and four heartbeats of 1s", r.Took)
	}
	var resumed bool
	for _, e := range r.Log {
		if e[0] == "resume" && e[2] == true {
			resumed = true
		}
	}
	if !resumed {
		t.Errorf("events %v: want a resumed session", r.Log)
	}
	p.checkConsole()
}

// TestClientFailover: a client given several URLs starts with the first
// that answers, trying them in turn. A dropped connection is retried on the
// same server, which resumes the session; when its server goes away it
// moves to the next one by itself: a new session there, its rooms joined
// again and its subscriptions resumed from the last positions it handled,
// so nothing published meanwhile is lost or handled twice. The two bridges
// share one bus, as the nodes of a cluster share their topics.
func TestClientFailover(t *testing.T) {
	browser := startBrowser(t)
	s := newAPIServer(t)
	// A second server, another bridge on the same bus, that lets the
	// first one's pages in.
	br2, err := bridge.New(s.bus,
		bridge.Expose("t.>", bridge.Subscribe, bridge.Publish, bridge.Request),
		bridge.ExposeRooms("*", bridge.Join, bridge.Presence),
		bridge.AllowOrigins(s.srv.URL),
		bridge.HelloAuth(func(_ context.Context, _ bridge.Identity, auth json.RawMessage) (bridge.Identity, error) {
			var a struct {
				Name string `json:"name"`
			}
			json.Unmarshal(auth, &a)
			return bridge.Identity{ID: a.Name}, nil
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(br2)
	t.Cleanup(func() {
		br2.Close()
		srv2.Close()
	})
	// A third URL where nothing listens: a server that is down.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()

	p := newTab(t, browser, s.srv.URL+"/", "api")
	script[bool](p, setup)
	type result struct {
		URLs    []string         `json:"urls"`
		Connect []map[string]any `json:"connect"`
		Got     []string         `json:"got"`
		Session string           `json:"session"`
		Members []string         `json:"members"`
		Pending int              `json:"pending"`
	}
	// The first URL is down: the client goes on to the second.
	r := script[result](p, `
const f = connect(['`+deadURL+`/bus/', '/bus/', '`+srv2.URL+`/'], { auth: { name: 'alice' }, minBackoff: 50, maxBackoff: 200 });
window.f = f;
f.connects = [];
f.on('connect', (e) => f.connects.push({ url: e.url, resumed: e.resumed, session: e.session }));
f.got = [];
await until(() => f.connected, 'a connection');
await f.join('r1');
await f.subscribe('t.f', (d) => { f.got.push(d); }).ready;
await f.publish('t.f', 'm1');
await until(() => f.got.length === 1, 'm1');
return { urls: f.urls, connect: f.connects, got: f.got, session: f.session };`)
	if len(r.URLs) != 3 || !strings.HasPrefix(r.URLs[0], "ws://") || !strings.HasSuffix(r.URLs[1], "/bus/") {
		t.Errorf("urls %v, want three ws: URLs", r.URLs)
	}
	if len(r.Connect) != 1 || r.Connect[0]["url"] != r.URLs[1] {
		t.Fatalf("connects %v, want one to %s", r.Connect, r.URLs[1])
	}
	first := r.Session

	// The host drops the connection (close code 4009): the client comes
	// back to the same server and resumes its session.
	if err := s.br.Load().Disconnect(first); err != nil {
		t.Fatal(err)
	}
	s.publish("t.f", "m2")
	r = script[result](p, `
await until(() => f.connects.length === 2 && f.got.length === 2, 'the same server again and m2');
return { urls: f.urls, connect: f.connects, got: f.got, session: f.session };`)
	if r.Connect[1]["url"] != r.URLs[1] || r.Connect[1]["resumed"] != true || r.Session != first {
		t.Errorf("connects %v, session %q: want the second to %s, resuming %q", r.Connect, r.Session, r.URLs[1], first)
	}

	// The first server goes away; what is published meanwhile waits in the
	// topic's history.
	s.srv.CloseClientConnections()
	s.br.Load().Close()
	s.srv.Close()
	s.publish("t.f", "m3")
	r = script[result](p, `
await until(() => f.connects.length === 3 && f.got.length === 3, 'the other server and m3');
await f.publish('t.f', 'm4');
await until(() => f.got.length === 4, 'm4');
await sleep(300); // nothing more arrives
const members = (await f.presence('r1')).map((m) => m.member);
return { urls: f.urls, connect: f.connects, got: f.got, session: f.session, members, pending: f._pending.size };`)
	if len(r.Connect) != 3 || r.Connect[2]["url"] != r.URLs[2] || r.Connect[2]["resumed"] != false {
		t.Errorf("connects %v, want the third to %s, not resumed", r.Connect, r.URLs[2])
	}
	if got := strings.Join(r.Got, ","); got != "m1,m2,m3,m4" {
		t.Errorf("got %s, want m1,m2,m3,m4: each once, in order", got)
	}
	if r.Session == first || !slices.Contains(r.Members, r.Session) {
		t.Errorf("session %q (was %q), members of r1 %v: want a new session, in r1 again", r.Session, first, r.Members)
	}
	if r.Pending != 0 {
		t.Errorf("%d calls still pending", r.Pending)
	}
	// Chromium logs the refused connection to the server that was down.
	p.checkConsole("WebSocket connection to")
}
