package bridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/internal/tcpproxy"
)

// inbox collects a subscription's messages.
type inbox struct {
	mu   sync.Mutex
	msgs []*client.Message
	ch   chan struct{}
}

func newInbox() *inbox { return &inbox{ch: make(chan struct{}, 1)} }

func (in *inbox) handle(_ context.Context, m *client.Message) error {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
	select {
	case in.ch <- struct{}{}:
	default:
	}
	return nil
}

// wait returns once n messages arrived.
func (in *inbox) wait(t *testing.T, n int) []*client.Message {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		in.mu.Lock()
		if len(in.msgs) >= n {
			out := append([]*client.Message(nil), in.msgs...)
			in.mu.Unlock()
			return out
		}
		in.mu.Unlock()
		select {
		case <-in.ch:
		case <-deadline:
			t.Fatalf("got %d messages, want %d", len(in.msgs), n)
		}
	}
}

func (in *inbox) len() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.msgs)
}

// TestNamespaces mounts two namespaces on one bus: their clients cannot
// reach each other's topics or rooms, and the host sees the prefixes.
func TestNamespaces(t *testing.T) {
	b, err := bus.New()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mk := func(ns string) *env {
		br, err := bridge.New(b, bridge.Namespace(ns),
			bridge.Expose(">", bridge.Subscribe, bridge.Publish, bridge.Request),
			bridge.ExposeRooms(">", bridge.Join, bridge.Presence))
		if err != nil {
			t.Fatal(err)
		}
		srv := newServer(br)
		e := &env{t: t, bus: b, br: br, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/bus/"}
		t.Cleanup(func() { br.Close(); srv.Close() })
		return e
	}
	e1, e2 := mk("t1"), mk("t2")
	c1, c2 := e1.dial(), e2.dial()
	in1, in2 := newInbox(), newInbox()
	if _, err := c1.Subscribe(ctxT(t), ">", in1.handle); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Subscribe(ctxT(t), ">", in2.handle); err != nil {
		t.Fatal(err)
	}
	var host []string
	var hmu sync.Mutex
	hs, _ := b.Subscribe(">", func(_ context.Context, m bus.Message[any]) error {
		hmu.Lock()
		host = append(host, m.Topic())
		hmu.Unlock()
		return nil
	})
	defer hs.Unsubscribe()

	if _, err := c1.Publish(ctxT(t), "chat.a", 1, client.Ack()); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Publish(ctxT(t), "t2.chat.a", 2, client.Ack()); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Publish(ctxT(t), "chat.a", 3, client.Ack()); err != nil {
		t.Fatal(err)
	}
	m1 := in1.wait(t, 2)
	m2 := in2.wait(t, 1)
	time.Sleep(50 * time.Millisecond) // a leak would show up here
	if in1.len() != 2 || in2.len() != 1 {
		t.Fatalf("t1 got %d, t2 got %d, want 2 and 1", in1.len(), in2.len())
	}
	if m1[0].Topic != "chat.a" || m1[1].Topic != "t2.chat.a" || string(m2[0].Data) != "3" || m2[0].Topic != "chat.a" {
		t.Fatalf("t1 %s %s, t2 %s", m1[0].Topic, m1[1].Topic, m2[0].Topic)
	}
	hmu.Lock()
	if strings.Join(host, " ") != "t1.chat.a t1.t2.chat.a t2.chat.a" {
		t.Fatalf("bus topics %v", host)
	}
	hmu.Unlock()
	// Rooms are namespaced too.
	if err := c1.Join(ctxT(t), "lobby"); err != nil {
		t.Fatal(err)
	}
	if ms, err := c2.Presence(ctxT(t), "lobby"); err != nil || len(ms) != 0 {
		t.Fatalf("t2 sees t1's lobby: %+v %v", ms, err)
	}
	if got := b.RoomMembers("t1.lobby"); len(got) != 1 || got[0] != c1.SessionID() {
		t.Fatalf("bus room t1.lobby: %v", got)
	}
	// Endpoints too.
	ep, _ := bus.NewEndpoint[int, int](b, "t1.rpc.double")
	h, _ := ep.Handle(func(_ context.Context, n int) (int, error) { return 2 * n, nil })
	defer h.Stop()
	if got, err := c1.Request(ctxT(t), "rpc.double", 21); err != nil || string(got) != "42" {
		t.Fatalf("t1 request: %s %v", got, err)
	}
	if _, err := c2.Request(ctxT(t), "rpc.double", 21); !errors.Is(err, client.ErrNoHandler) {
		t.Fatalf("t2 reached t1's endpoint: %v", err)
	}
}

// TestRooms covers To, Except and ExceptSelf, and presence events.
func TestRooms(t *testing.T) {
	e := newEnv(t, nil, bridge.Expose("chat.>", bridge.Subscribe, bridge.Publish),
		bridge.ExposeRooms(">", bridge.Join, bridge.Presence))
	var clients []*client.Client
	var inboxes []*inbox
	for range 12 { // more than the fan-out's room-index threshold
		c := e.dial()
		in := newInbox()
		if _, err := c.Subscribe(ctxT(t), "chat.x", in.handle); err != nil {
			t.Fatal(err)
		}
		clients, inboxes = append(clients, c), append(inboxes, in)
	}
	var events []client.PresenceEvent
	var emu sync.Mutex
	if _, err := clients[0].WatchPresence(ctxT(t), "red", func(ev client.PresenceEvent) {
		emu.Lock()
		events = append(events, ev)
		emu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		room := "blue"
		if i < 4 {
			room = "red"
		}
		if err := c.Join(ctxT(t), room); err != nil {
			t.Fatal(err)
		}
	}
	if err := clients[1].Join(ctxT(t), "muted"); err != nil {
		t.Fatal(err)
	}
	pub := clients[0]
	for _, p := range []struct {
		data int
		opts []client.PublishOption
	}{
		{1, []client.PublishOption{client.To("red")}},
		{2, []client.PublishOption{client.To("red"), client.ExceptSelf()}},
		{3, []client.PublishOption{client.To("red", "blue"), client.Except("muted")}},
		{4, []client.PublishOption{client.ExceptSelf()}},
	} {
		if _, err := pub.Publish(ctxT(t), "chat.x", p.data, append(p.opts, client.Ack())...); err != nil {
			t.Fatal(err)
		}
	}
	// The last publish reaches everyone but the publisher: once every
	// other client has it, everything before it has arrived too.
	for _, in := range inboxes[1:] {
		msgs := in.wait(t, 1)
		for string(msgs[len(msgs)-1].Data) != "4" {
			msgs = in.wait(t, len(msgs)+1)
		}
	}
	want := func(i int) string {
		s := ""
		if i < 4 {
			s += "1"
			if i != 0 {
				s += "2"
			}
		}
		if i != 1 {
			s += "3"
		}
		if i != 0 {
			s += "4"
		}
		return s
	}
	time.Sleep(50 * time.Millisecond)
	for i, in := range inboxes {
		in.mu.Lock()
		got := ""
		for _, m := range in.msgs {
			got += string(m.Data)
		}
		in.mu.Unlock()
		if got != want(i) {
			t.Errorf("client %d got %q, want %q", i, got, want(i))
		}
	}
	emu.Lock()
	n := len(events)
	emu.Unlock()
	if n < 3 { // clients 1..3 joined red after the watch began
		t.Errorf("%d presence events, want at least 3", n)
	}
	// An addressed message published in-process, with nothing after it,
	// reaches the room's clients too.
	if _, err := e.bus.PublishRaw(ctxT(t), "chat.x", []byte("5"), bus.To("red")); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		msgs := inboxes[i].wait(t, len(want(i))+1)
		if got := string(msgs[len(msgs)-1].Data); got != "5" {
			t.Errorf("client %d: last message %q, want 5", i, got)
		}
	}
}

// TestServerRequest asks one connected Go client.
func TestServerRequest(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial()
	c.Handle("ui.confirm", func(_ context.Context, data json.RawMessage) (any, error) {
		var q struct{ Q string }
		json.Unmarshal(data, &q)
		if q.Q == "fail" {
			return nil, errors.New("user said no")
		}
		return map[string]bool{"ok": true}, nil
	})
	got, err := e.br.Request(ctxT(t), c.SessionID(), "ui.confirm", []byte(`{"q":"delete?"}`))
	if err != nil || string(got) != `{"ok":true}` {
		t.Fatalf("Request: %s %v", got, err)
	}
	var re *bridge.ReplyError
	if _, err := e.br.Request(ctxT(t), c.SessionID(), "ui.confirm", []byte(`{"q":"fail"}`)); !errors.As(err, &re) || re.Code != "failed" || !strings.Contains(re.Message, "user said no") {
		t.Fatalf("failing handler: %v", err)
	}
	if _, err := e.br.Request(ctxT(t), c.SessionID(), "ui.none", []byte(`1`)); !errors.As(err, &re) || re.Code != "no_handler" {
		t.Fatalf("no handler: %v", err)
	}
	if _, err := e.br.Request(ctxT(t), "nobody", "ui.confirm", []byte(`1`)); !errors.Is(err, bridge.ErrNoSession) {
		t.Fatalf("unknown session: %v", err)
	}
	if _, err := e.br.Request(ctxT(t), c.SessionID(), "ui.confirm", []byte(`{`)); err == nil {
		t.Fatal("Request sent data that is not JSON")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	c.Handle("ui.slow", func(ctx context.Context, _ json.RawMessage) (any, error) {
		time.Sleep(100 * time.Millisecond)
		return 1, nil
	})
	if _, err := e.br.Request(ctx, c.SessionID(), "ui.slow", []byte(`1`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow handler: %v", err)
	}
}

// TestResumeNotRecovered: when history no longer covers what a session
// missed, the resume says recovered: false and delivery goes on from what
// history holds.
func TestResumeNotRecovered(t *testing.T) {
	e := newEnv(t, []bus.Option{bus.History(5, 0)}, bridge.Expose("news.>", bridge.Subscribe))
	p := tcpproxy.New(t, strings.TrimPrefix(e.srv.URL, "http://"))
	events := make(chan client.Event, 16)
	c, err := client.Dial(ctxT(t), p.URL(e.url), client.ReconnectBackoff(time.Millisecond, 5*time.Millisecond),
		client.OnEvent(func(ev client.Event) { events <- ev }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-events // connected
	in := newInbox()
	sub, err := c.Subscribe(ctxT(t), "news.today", in.handle)
	if err != nil {
		t.Fatal(err)
	}
	e.bus.PublishRaw(ctxT(t), "news.today", []byte("1"))
	in.wait(t, 1)
	// Stop the client from reconnecting while 20 messages are published:
	// the proxy refuses to forward until the history has moved on.
	p.StopAccepting()
	p.Cut()
	waitUntil(t, func() bool { return e.br.Stats().Connections == 0 })
	for i := 2; i <= 21; i++ {
		e.bus.PublishRaw(ctxT(t), "news.today", []byte(strings.Repeat("9", 1)))
	}
	p2 := tcpproxy.NewAt(t, p.Addr(), strings.TrimPrefix(e.srv.URL, "http://"))
	_ = p2
	var resumed client.Event
	for ev := range events {
		if ev.Type == client.Connected {
			resumed = ev
			break
		}
	}
	if !resumed.Resumed || resumed.Recovered[sub.ID()] {
		t.Fatalf("resume event %+v, want resumed and not recovered", resumed)
	}
	msgs := in.wait(t, 6) // seq 1, then 17..21 from history
	if msgs[1].Seq != 17 || msgs[5].Seq != 21 {
		t.Fatalf("after the gap got seq %d..%d, want 17..21", msgs[1].Seq, msgs[5].Seq)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestClientBasics covers unsubscribe, handler failures and errors.
func TestClientBasics(t *testing.T) {
	e := newEnv(t, nil, bridge.Expose("q.>", bridge.Subscribe, bridge.Publish))
	c := e.dial(client.Header(http.Header{"X-Test": {"1"}}))
	if _, err := c.Subscribe(ctxT(t), "secret", func(context.Context, *client.Message) error { return nil }); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("subscribe forbidden: %v", err)
	}
	if _, err := c.Publish(ctxT(t), "q..x", 1, client.Ack()); !errors.Is(err, client.ErrInvalidName) {
		t.Fatalf("publish invalid: %v", err)
	}
	// A failing handler gets the message again, and does not see it again
	// once it succeeded.
	var mu sync.Mutex
	var attempts []int
	done := make(chan struct{})
	sub, err := c.Subscribe(ctxT(t), "q.work", func(_ context.Context, m *client.Message) error {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, m.Attempt)
		if len(attempts) < 3 {
			return errors.New("not yet")
		}
		close(done)
		return nil
	}, client.MaxUnacked(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctxT(t), "q.work", "job", client.Ack()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no third attempt")
	}
	mu.Lock()
	if len(attempts) != 3 || attempts[2] != 3 {
		t.Fatalf("attempts %v", attempts)
	}
	mu.Unlock()
	if err := sub.Unsubscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	<-sub.Done()
	if err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := c.Publish(ctxT(t), "q.x", 1); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("publish after Close: %v", err)
	}
	waitUntil(t, func() bool { return e.br.Stats().Sessions == 0 }) // bye ended the session
}

// TestAckedPublishesBackToBack: the default rate limit lets a client
// publish with acknowledgements back to back (here faster than over any
// real network: its burst covers 1500 publishes), and the welcome reports
// it.
func TestAckedPublishesBackToBack(t *testing.T) {
	e := newEnv(t, nil, bridge.Expose("p.>", bridge.Publish))
	_, w := e.rawHello()
	if w.Limits == nil || w.Limits.Rate != 1000 || w.Limits.Burst != 2000 {
		t.Fatalf("welcome limits %+v, want rate 1000, burst 2000", w.Limits)
	}
	c := e.dial()
	for i := range 1500 {
		if _, err := c.Publish(ctxT(t), "p.x", i, client.Ack()); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
}
