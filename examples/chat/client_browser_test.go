package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bus"
)

// The tests in this file drive courier.js itself in Chromium, against a
// bridge exposing "t.>" and every one-token room. A test's scenario is a
// script run in the page; the page imports the client from the bridge.

// apiServer is a bus with a bridge that a test can restart (a new bridge
// forgets its sessions; the bus keeps the topics' history).
type apiServer struct {
	t   *testing.T
	bus *bus.Bus
	srv *httptest.Server
	br  atomic.Pointer[bridge.Bridge]
	mu  sync.Mutex
	old []*bridge.Bridge
	opt []bridge.Option // more options for every bridge
}

const blankPage = `<!doctype html><meta charset="utf-8"><title>courier.js</title><link rel="icon" href="data:,">`

func newAPIServer(t *testing.T, opts ...bridge.Option) *apiServer {
	t.Helper()
	b, err := bus.New()
	if err != nil {
		t.Fatal(err)
	}
	s := &apiServer{t: t, bus: b, opt: opts}
	add, err := bus.NewEndpoint[[]int, int](b, "t.add")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := add.Handle(func(_ context.Context, xs []int) (int, error) {
		sum := 0
		for _, x := range xs {
			sum += x
		}
		return sum, nil
	}); err != nil {
		t.Fatal(err)
	}
	s.restart()
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(blankPage))
	})
	mux.Handle("/bus/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.br.Load().ServeHTTP(w, r) }))
	s.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		s.srv.CloseClientConnections()
		s.srv.Close()
		s.br.Load().Close()
		s.mu.Lock()
		for _, br := range s.old {
			br.Close()
		}
		s.mu.Unlock()
		b.Close()
	})
	return s
}

// restart puts a new bridge in place and closes the old one: its clients
// get close code 1000 ("closed") and their sessions are gone.
func (s *apiServer) restart() {
	s.t.Helper()
	br, err := bridge.New(s.bus, append([]bridge.Option{
		bridge.Expose("t.>", bridge.Subscribe, bridge.Publish, bridge.Request),
		bridge.ExposeRooms("*", bridge.Join, bridge.Presence),
		bridge.HelloAuth(func(_ context.Context, id bridge.Identity, auth json.RawMessage) (bridge.Identity, error) {
			var a struct {
				Name string `json:"name"`
			}
			json.Unmarshal(auth, &a)
			if a.Name == "mallory" {
				return bridge.Identity{}, bridge.ErrUnauthorized
			}
			return bridge.Identity{ID: a.Name}, nil
		}),
	}, s.opt...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	if old := s.br.Swap(br); old != nil {
		old.Close()
	}
}

func (s *apiServer) publish(topic string, v any) {
	s.t.Helper()
	data, _ := json.Marshal(v)
	if _, err := s.bus.PublishRaw(context.Background(), topic, data); err != nil {
		s.t.Fatal(err)
	}
}

// script runs an async function body in the page and decodes its result.
func script[T any](p *chatPage, body string) T {
	p.T.Helper()
	return eval[T](p, "(async () => {\n"+body+"\n})()")
}

const setup = `
const { connect, CourierError } = await import('/bus/client.js');
window.connect = connect;
window.CourierError = CourierError;
// openClient connects a client and resolves once it is online.
window.openClient = (name, opts) => new Promise((resolve, reject) => {
  const c = connect('/bus/', { auth: { name }, minBackoff: 50, maxBackoff: 200, ...opts });
  c.log = [];
  for (const ev of ['connect', 'disconnect', 'resume', 'error', 'resync']) c.on(ev, (e) => c.log.push([ev, e && e.code || '', e]));
  const off = c.on('connect', () => { off(); resolve(c); });
  setTimeout(() => reject(new Error('not connected in 5s')), 5000);
});
// until waits for a condition.
window.until = (f, what) => new Promise((resolve, reject) => {
  const t0 = Date.now();
  const tick = () => {
    let v;
    try { v = f(); } catch (e) { reject(e); return; }
    if (v) resolve(v);
    else if (Date.now() - t0 > 8000) reject(new Error('timed out waiting for ' + what));
    else setTimeout(tick, 20);
  };
  tick();
});
window.sleep = (ms) => new Promise((r) => setTimeout(r, ms));
window.code = (p) => p.then(() => 'ok', (e) => e.code || String(e));
return true;`

func apiTab(t *testing.T) (*apiServer, *chatPage) {
	t.Helper()
	browser := startBrowser(t)
	s := newAPIServer(t)
	p := newTab(t, browser, s.srv.URL+"/", "api")
	script[bool](p, setup)
	return s, p
}

func TestClientPublishSubscribeRequest(t *testing.T) {
	_, p := apiTab(t)
	type result struct {
		Acks     []map[string]any `json:"acks"`
		Got      []map[string]any `json:"got"`
		Sum      int              `json:"sum"`
		NoHandle string           `json:"noHandler"`
		Forbid   []string         `json:"forbidden"`
		Invalid  string           `json:"invalid"`
		Session  string           `json:"session"`
		Limits   map[string]any   `json:"limits"`
		Volatile []map[string]any `json:"volatile"`
		Position map[string]any   `json:"position"`
	}
	r := script[result](p, `
const c = await openClient('alice');
const got = [];
const stop = c.subscribe('t.a', (data, m) => { got.push({ data, seq: m.seq, epoch: m.epoch, n: m.n, topic: m.topic }); });
const sub = await stop.ready;
const acks = [];
for (const i of [1, 2, 3]) acks.push(await c.publish('t.a', { i }));
await until(() => got.length === 3, '3 messages');
const sum = await c.request('t.add', [1, 2, 39]);
const noHandler = await code(c.request('t.nobody', 1, { timeout: 2000 }));
const forbidden = [await code(c.publish('x.y', 1)), await code(c.subscribe('x.y', () => {}).ready),
  await code(c.join('a.b')), await code(c.request('x.add', 1))];
const invalid = await code(c.publish('t..a', 1));
const vol = [];
c.subscribe('t.v', (d, m) => { vol.push({ d, seq: m.seq, n: m.n }); }, { volatile: true });
await sleep(100);
const v = await c.publish('t.v', 'x', { volatile: true });
await until(() => vol.length === 1, 'the volatile message');
return { acks, got, sum, noHandler, forbidden, invalid, session: c.session, limits: c.limits, volatile: [v, ...vol],
  position: stop.position() };`)
	if len(r.Acks) != 3 || len(r.Got) != 3 {
		t.Fatalf("acks %v, got %v", r.Acks, r.Got)
	}
	for i, a := range r.Acks {
		if e, ok := a["epoch"].(string); !ok || e == "" || a["seq"] != float64(i+1) {
			t.Errorf("puback %d: %v, want a string epoch and seq %d", i, a, i+1)
		}
		m := r.Got[i]
		if m["seq"] != float64(i+1) || m["epoch"] != a["epoch"] || m["n"] != float64(i+1) || m["topic"] != "t.a" {
			t.Errorf("message %d: %v", i, m)
		}
		if d, _ := m["data"].(map[string]any); d["i"] != float64(i+1) {
			t.Errorf("message %d data: %v", i, m["data"])
		}
	}
	if r.Position["seq"] != float64(3) || r.Position["epoch"] != r.Acks[0]["epoch"] {
		t.Errorf("position: %v", r.Position)
	}
	if r.Sum != 42 {
		t.Errorf("request t.add: %d, want 42", r.Sum)
	}
	if r.NoHandle != "no_handler" {
		t.Errorf("request without handler: %q, want no_handler", r.NoHandle)
	}
	if strings.Join(r.Forbid, ",") != "forbidden,forbidden,forbidden,forbidden" {
		t.Errorf("unexposed publish, subscribe, join, request: %v, want forbidden each", r.Forbid)
	}
	if r.Invalid != "invalid_name" {
		t.Errorf("publish to t..a: %q, want invalid_name", r.Invalid)
	}
	if r.Session == "" || r.Limits["frame"] != float64(64<<10) {
		t.Errorf("session %q, limits %v", r.Session, r.Limits)
	}
	if len(r.Volatile) != 2 || r.Volatile[0]["seq"] != float64(0) || r.Volatile[1]["n"] != float64(0) {
		t.Errorf("volatile publish and delivery: %v", r.Volatile)
	}
	p.checkConsole()
}

// TestClientAbsentMeansZero: courier.js reads members the server leaves
// out as zero: the seq of a subscription to an empty topic and of a
// volatile publish, the members of an empty room, the attempt of a first
// delivery.
func TestClientAbsentMeansZero(t *testing.T) {
	_, p := apiTab(t)
	raw := script[json.RawMessage](p, `
const c = await openClient('alice');
const got = [];
const stop = c.subscribe('t.empty', (d, m) => { got.push({ seq: m.seq, n: m.n, attempt: m.attempt, epoch: m.epoch || null }); });
const sub = await stop.ready;
const members = await c.presence('empty');
const watched = await c.watchPresence('empty', () => {}).ready;
const vol = await c.publish('t.empty', 1, { volatile: true });
await c.publish('t.empty', 2);
await until(() => got.length === 2, 'two messages');
return { sub: { seq: sub.seq, recovered: sub.recovered, epoch: typeof sub.epoch },
  members, watched, vol: { seq: vol.seq, epoch: vol.epoch || null }, got };`)
	var r struct {
		Sub     map[string]any   `json:"sub"`
		Members []any            `json:"members"`
		Watched []any            `json:"watched"`
		Vol     map[string]any   `json:"vol"`
		Got     []map[string]any `json:"got"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	if r.Sub["seq"] != float64(0) || r.Sub["recovered"] != true || r.Sub["epoch"] != "string" {
		t.Errorf("subscribed to an empty topic: %v, want seq 0, recovered and an epoch", r.Sub)
	}
	if r.Members == nil || len(r.Members) != 0 || r.Watched == nil || len(r.Watched) != 0 {
		t.Errorf("presence of an empty room: %v and %v, want [] each", r.Members, r.Watched)
	}
	if r.Vol["seq"] != float64(0) || r.Vol["epoch"] != nil {
		t.Errorf("volatile puback: %v, want seq 0 and no epoch", r.Vol)
	}
	if len(r.Got) != 2 || r.Got[0]["seq"] != float64(0) || r.Got[0]["n"] != float64(0) || r.Got[0]["epoch"] != nil ||
		r.Got[1]["seq"] != float64(1) || r.Got[1]["attempt"] != float64(1) {
		t.Errorf("messages: %v, want a volatile one (seq 0, n 0, no epoch) and seq 1 on its first attempt", r.Got)
	}
	p.checkConsole()
}

func TestClientRoomsAndPresence(t *testing.T) {
	_, p := apiTab(t)
	type result struct {
		A, B, C    []string
		Presence   [][]string
		Watched    [][]string
		Events     []map[string]any
		Forbidden  string
		AfterLeave []string
	}
	r := script[result](p, `
const a = await openClient('alice'), b = await openClient('bob'), c = await openClient('carol');
const got = { a: [], b: [], c: [] };
const subs = [];
for (const [k, cl] of [['a', a], ['b', b], ['c', c]]) {
  const s = cl.subscribe('t.room', (d) => { got[k].push(d); });
  subs.push(s.ready);
}
await Promise.all(subs);
const watched = [], events = [];
const stop = c.watchPresence('r1', (members, ev) => {
  watched.push(members.map((m) => m.user));
  if (ev) events.push(ev);
});
await stop.ready;
await a.join('r1');
await b.join(['r1', 'r2']);
await until(() => events.length === 2, 'two joins');
await c.publish('t.room', 'to r1', { rooms: ['r1'] });
await c.publish('t.room', 'to r1 except r2', { rooms: ['r1'], except: ['r2'] });
await a.publish('t.room', 'all but alice', { excludeSelf: true });
await c.publish('t.room', 'everyone');
await until(() => got.c.length === 2 && got.a.length === 3 && got.b.length === 3, 'the messages');
const presence = [(await a.presence('r1')).map((m) => m.user), (await a.presence('r2')).map((m) => m.user)];
const forbidden = await code(a.presence('a.b'));
await b.leave('r1');
await until(() => events.length === 3, 'a leave');
const afterLeave = watched[watched.length - 1];
await stop();
return { A: got.a, B: got.b, C: got.c, presence, watched, events, forbidden, afterLeave };`)
	if got := strings.Join(r.A, "|"); got != "to r1|to r1 except r2|everyone" {
		t.Errorf("alice got %s", got)
	}
	if got := strings.Join(r.B, "|"); got != "to r1|all but alice|everyone" {
		t.Errorf("bob got %s", got)
	}
	if got := strings.Join(r.C, "|"); got != "all but alice|everyone" {
		t.Errorf("carol got %s", got)
	}
	if len(r.Presence) != 2 || strings.Join(slices.Sorted(slices.Values(r.Presence[0])), ",") != "alice,bob" ||
		strings.Join(r.Presence[1], ",") != "bob" {
		t.Errorf("presence of r1, r2: %v", r.Presence)
	}
	if len(r.Watched) < 3 || len(r.Watched[0]) != 0 || strings.Join(slices.Sorted(slices.Values(r.Watched[2])), ",") != "alice,bob" {
		t.Errorf("watched lists: %v", r.Watched)
	}
	if len(r.Events) != 3 || r.Events[0]["user"] != "alice" || r.Events[0]["joined"] != true ||
		r.Events[2]["user"] != "bob" || r.Events[2]["joined"] != false {
		t.Errorf("presence events: %v", r.Events)
	}
	if strings.Join(r.AfterLeave, ",") != "alice" {
		t.Errorf("members after bob left: %v", r.AfterLeave)
	}
	if r.Forbidden != "forbidden" {
		t.Errorf("presence of a.b: %q", r.Forbidden)
	}
	p.checkConsole()
}

func TestClientServerRequestAndRetry(t *testing.T) {
	s, p := apiTab(t)
	session := script[string](p, `
const c = await openClient('alice');
window.c = c;
c.handle('ui.confirm', (data) => ({ yes: data.q === 'ok?' }));
c.handle('ui.fail', () => { throw new Error('nope'); });
window.attempts = [];
window.handled = [];
const stop = c.subscribe('t.retry', (d, m) => {
  attempts.push([d, m.attempt]);
  if (d === 'flaky' && m.attempt === 1) throw new Error('first try fails');
  handled.push(d);
}, { onError: () => {} });
await stop.ready;
return c.session;`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	br := s.br.Load()
	out, err := br.Request(ctx, session, "ui.confirm", []byte(`{"q":"ok?"}`))
	if err != nil || string(out) != `{"yes":true}` {
		t.Errorf("server request ui.confirm: %s, %v", out, err)
	}
	_, err = br.Request(ctx, session, "ui.fail", []byte(`1`))
	var re *bridge.ReplyError
	if !errors.As(err, &re) || re.Code != "failed" || !strings.Contains(re.Message, "nope") {
		t.Errorf("server request ui.fail: %v, want failed: nope", err)
	}
	_, err = br.Request(ctx, session, "ui.none", []byte(`1`))
	if !errors.As(err, &re) || re.Code != "no_handler" {
		t.Errorf("server request ui.none: %v, want no_handler", err)
	}

	s.publish("t.retry", "flaky")
	s.publish("t.retry", "fine")
	type result struct {
		Attempts [][]any
		Handled  []string
	}
	r := script[result](p, `
await until(() => handled.length === 2, 'both handled');
await sleep(400); // nothing comes again once acked
return { attempts, handled };`)
	if strings.Join(r.Handled, ",") != "flaky,fine" && strings.Join(r.Handled, ",") != "fine,flaky" {
		t.Errorf("handled %v", r.Handled)
	}
	flaky := 0
	for _, a := range r.Attempts {
		if a[0] == "flaky" {
			flaky++
		}
	}
	if flaky != 2 || len(r.Attempts) != 3 {
		t.Errorf("attempts %v: want flaky twice (a nack, then a redelivery) and fine once", r.Attempts)
	}
	p.checkConsole()
}

func TestClientOfflineBufferAndResume(t *testing.T) {
	s, p := apiTab(t)
	type result struct {
		States   []string
		Buffered []string
		Got      []string
		Resume   map[string]any
		Volatile map[string]any
		Full     string
		Pending  int
	}
	script[bool](p, `
const c = await openClient('alice', { buffer: 2 });
window.c = c;
c.states = [];
c.on('state', (s) => c.states.push(s));
c.got = [];
const stop = c.subscribe('t.r', (d) => { c.got.push(d); });
await stop.ready;
window.stop = stop;
await c.publish('t.r', 'm1');
await until(() => c.got.length === 1, 'm1');
c.disconnect();
return true;`)
	s.publish("t.r", "m2")
	s.publish("t.r", "m3")
	r := script[result](p, `
const vol = await c.publish('t.r', 'dropped', { volatile: true });
const p1 = c.publish('t.r', 'b1'), p2 = c.publish('t.r', 'b2');
const full = await code(c.publish('t.r', 'b3'));
await sleep(200);
const resumed = new Promise((r) => c.on('resume', r));
c.reconnect();
const resume = await resumed;
const buffered = [(await p1).seq, (await p2).seq].map(String);
await until(() => c.got.length === 5, 'five messages');
return { states: c.states, buffered, got: c.got, resume, volatile: vol, full, pending: c._pending.size };`)
	if got := strings.Join(r.Got, ","); got != "m1,m2,m3,b1,b2" {
		t.Errorf("got %s, want m1,m2,m3,b1,b2", got)
	}
	if strings.Join(r.Buffered, ",") != "4,5" {
		t.Errorf("buffered publishes got seqs %v, want 4,5", r.Buffered)
	}
	if r.Full != "buffer_full" {
		t.Errorf("third buffered publish: %q, want buffer_full", r.Full)
	}
	if r.Volatile["dropped"] != true {
		t.Errorf("volatile publish while offline: %v, want dropped", r.Volatile)
	}
	if r.Resume["resumed"] != true {
		t.Errorf("resume event %v, want resumed", r.Resume)
	}
	if rec, _ := r.Resume["recovered"].(map[string]any); len(rec) != 1 || rec["s1"] != true {
		t.Errorf("resume event recovered %v, want s1: true", r.Resume["recovered"])
	}
	if strings.Join(r.States, ",") != "offline,reconnecting,online" {
		t.Errorf("states %v", r.States)
	}
	if r.Pending != 0 {
		t.Errorf("%d calls still pending", r.Pending)
	}

	// A bridge that restarts forgets its sessions: the client starts a new
	// one, joins its rooms again and subscribes from where it was.
	script[bool](p, `await c.join('r1'); return true;`)
	s.restart()
	s.publish("t.r", "m6")
	r = script[result](p, `
const resume = await new Promise((r) => { const off = c.on('resume', (e) => { off(); r(e); }); });
await until(() => c.got.length === 6, 'six messages');
const rooms = await c.presence('r1');
return { got: c.got, resume, pending: rooms.length };`)
	if got := strings.Join(r.Got, ","); got != "m1,m2,m3,b1,b2,m6" {
		t.Errorf("after a restart got %s", got)
	}
	if r.Resume["resumed"] != false {
		t.Errorf("resume after a restart: %v, want a new session", r.Resume)
	}
	if rec, _ := r.Resume["recovered"].(map[string]any); rec["s1"] != true {
		t.Errorf("resume after a restart: recovered %v, want s1: true", r.Resume["recovered"])
	}
	if r.Pending != 1 {
		t.Errorf("r1 has %d members after the restart, want the client", r.Pending)
	}
	p.checkConsole()
}

// TestClientUnauthorized: a refused hello stops the client (close code
// 4001) instead of retrying, and what it is asked to do fails.
func TestClientUnauthorized(t *testing.T) {
	_, p := apiTab(t)
	type result struct {
		Errors  []map[string]any
		States  []string
		Publish string
		Join    string
	}
	r := script[result](p, `
const c = connect('/bus/', { auth: { name: 'mallory' }, minBackoff: 50, maxBackoff: 100 });
const errors = [], states = [];
c.on('error', (e) => errors.push({ code: e.code, closeCode: e.closeCode }));
c.on('state', (s) => states.push(s));
const pending = code(c.publish('t.a', 1));
await until(() => errors.length > 0, 'the refusal');
await sleep(500); // no retries meanwhile
return { errors, states, publish: await pending, join: await code(c.join('r1')) };`)
	if len(r.Errors) != 1 || r.Errors[0]["code"] != "unauthorized" || r.Errors[0]["closeCode"] != float64(4001) {
		t.Errorf("errors %v, want one unauthorized with close code 4001", r.Errors)
	}
	if strings.Join(r.States, ",") != "offline" {
		t.Errorf("states %v, want offline only (no reconnect)", r.States)
	}
	if r.Publish != "unauthorized" || r.Join != "unauthorized" {
		t.Errorf("publish %q, join %q: want unauthorized", r.Publish, r.Join)
	}
	p.checkConsole("401", "WebSocket")
}
