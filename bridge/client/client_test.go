package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func server(t *testing.T, opts ...bridge.Option) (*bus.Bus, string) {
	t.Helper()
	b, err := bus.New()
	if err != nil {
		t.Fatal(err)
	}
	br, err := bridge.New(b, opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(br)
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Start()
	t.Cleanup(func() { br.Close(); srv.Close(); b.Close() })
	return b, "ws" + strings.TrimPrefix(srv.URL, "http") + "/"
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDialErrors(t *testing.T) {
	_, url := server(t, bridge.Authenticate(func(*http.Request) (bridge.Identity, error) {
		return bridge.Identity{}, bridge.ErrUnauthorized
	}))
	if _, err := client.Dial(ctxT(t), url); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("dial refused: %v", err)
	}
	if _, err := client.Dial(ctxT(t), "ws://127.0.0.1:1/"); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	_, url = server(t, bridge.HelloAuth(func(context.Context, bridge.Identity, json.RawMessage) (bridge.Identity, error) {
		return bridge.Identity{}, errors.New("bad token")
	}))
	if _, err := client.Dial(ctxT(t), url, client.Auth("x")); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("hello refused: %v", err)
	}
	if _, err := client.Dial(ctxT(t), url, client.ReconnectBackoff(0, 0)); err == nil {
		t.Fatal("bad backoff accepted")
	}
}

func TestErrorIs(t *testing.T) {
	var err error = &client.Error{Code: "forbidden", Message: "no"}
	if !errors.Is(err, client.ErrForbidden) || errors.Is(err, client.ErrLimit) {
		t.Fatal("errors.Is does not match by code")
	}
}

func TestVolatileAndStart(t *testing.T) {
	b, url := server(t, bridge.Expose("t.>", bridge.Subscribe, bridge.Publish))
	c, err := client.Dial(ctxT(t), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 5 {
		b.PublishRaw(ctxT(t), "t.a", []byte{'0' + byte(i)})
	}
	pos, _ := b.Position(ctxT(t), "t.a")
	got := make(chan *client.Message, 10)
	h := func(_ context.Context, m *client.Message) error { got <- m; return nil }
	if _, err := c.Subscribe(ctxT(t), "t.a", h, client.StartAfter(pos.Epoch, 3)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []uint64{4, 5} {
		if m := <-got; m.Seq != want {
			t.Fatalf("seq %d, want %d", m.Seq, want)
		}
	}
	vol := make(chan *client.Message, 10)
	if _, err := c.Subscribe(ctxT(t), "t.*", func(_ context.Context, m *client.Message) error { vol <- m; return nil }, client.Volatile()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctxT(t), "t.b", "v", client.Volatile(), client.Ack()); err != nil {
		t.Fatal(err)
	}
	if m := <-vol; m.Seq != 0 || m.Topic != "t.b" || string(m.Data) != `"v"` {
		t.Fatalf("volatile message %+v", m)
	}
}

// restartable is a bridge that can be replaced by a new one on the same
// bus and address, as when the server restarts: the new bridge knows
// none of the old one's sessions.
type restartable struct {
	b    *bus.Bus
	opts []bridge.Option
	url  string
	cur  atomic.Pointer[bridge.Bridge]
}

func newRestartable(t *testing.T, opts ...bridge.Option) *restartable {
	t.Helper()
	b, err := bus.New()
	if err != nil {
		t.Fatal(err)
	}
	r := &restartable{b: b, opts: opts}
	r.restart(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.cur.Load().ServeHTTP(w, req)
	}))
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Start()
	t.Cleanup(func() { r.cur.Load().Close(); srv.Close(); b.Close() })
	r.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/"
	return r
}

// restart puts a new bridge in place and closes the old one, which closes
// its connections (1000 "closed").
func (r *restartable) restart(t *testing.T) {
	t.Helper()
	br, err := bridge.New(r.b, r.opts...)
	if err != nil {
		t.Fatal(err)
	}
	if old := r.cur.Swap(br); old != nil {
		old.Close()
	}
}

// TestAckNotInNewSession: a delivery of one session that is handled after
// a new session began is not acknowledged in the new one, where its
// delivery number names another message. The handler runs the first
// session's message 1 while the bridge restarts; the new session delivers
// message 2, also as delivery 1; the handler fails it, and it must come
// again rather than be settled by the old message's ack.
func TestAckNotInNewSession(t *testing.T) {
	r := newRestartable(t, bridge.Expose("t.>", bridge.Subscribe))
	connected := make(chan client.Event, 4)
	c, err := client.Dial(ctxT(t), r.url, client.ReconnectBackoff(time.Millisecond, 10*time.Millisecond),
		client.OnEvent(func(ev client.Event) {
			if ev.Type == client.Connected {
				connected <- ev
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first := <-connected

	started, release := make(chan struct{}), make(chan struct{})
	type got struct {
		seq     uint64
		attempt int
	}
	gots := make(chan got, 10)
	_, err = c.Subscribe(ctxT(t), "t.a", func(_ context.Context, m *client.Message) error {
		gots <- got{m.Seq, m.Attempt}
		switch {
		case m.Seq == 1:
			close(started)
			<-release
		case m.Seq == 2 && m.Attempt == 1:
			return errors.New("not yet")
		}
		return nil
	}, client.MaxUnacked(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.b.PublishRaw(ctxT(t), "t.a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	<-started
	r.restart(t)
	second := <-connected
	if second.Resumed || second.Session == first.Session {
		t.Fatalf("after the restart: %+v, want a new session", second)
	}
	if err := c.Ping(ctxT(t)); err != nil { // the subscription is made again before the pong
		t.Fatal(err)
	}
	if _, err := r.b.PublishRaw(ctxT(t), "t.a", []byte("2")); err != nil {
		t.Fatal(err)
	}
	close(release)
	want := []got{{1, 1}, {2, 1}, {2, 2}}
	for i, w := range want {
		select {
		case g := <-gots:
			if g != w {
				t.Fatalf("delivery %d: got seq %d attempt %d, want seq %d attempt %d", i, g.seq, g.attempt, w.seq, w.attempt)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("delivery %d (seq %d attempt %d) did not come: an ack of the old session settled it", i, w.seq, w.attempt)
		}
	}
}

// TestNewSessionJoinsBeforeSubscribing: in a new session the client joins
// its rooms again before it subscribes again, so that a host which opens a
// room's topic to the room's members only lets the subscription in.
func TestNewSessionJoinsBeforeSubscribing(t *testing.T) {
	var r *restartable
	r = newRestartable(t, bridge.Expose("room.>", bridge.Subscribe), bridge.ExposeRooms(">", bridge.Join),
		bridge.Authorize(func(ctx context.Context, _ bridge.Identity, action bridge.Action, name string) error {
			sid, _ := bridge.SessionID(ctx)
			if action == bridge.Subscribe && !slices.Contains(r.b.RoomMembers("vip"), sid) {
				return errors.New("members only")
			}
			return nil
		}))
	events := make(chan client.Event, 16)
	c, err := client.Dial(ctxT(t), r.url, client.ReconnectBackoff(time.Millisecond, 10*time.Millisecond),
		client.OnEvent(func(ev client.Event) { events <- ev }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ev := <-events; ev.Type != client.Connected {
		t.Fatalf("first event %+v", ev)
	}
	got := make(chan string, 10)
	h := func(_ context.Context, m *client.Message) error { got <- string(m.Data); return nil }
	if _, err := c.Subscribe(ctxT(t), "room.vip", h); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("subscribe before joining: got %v, want forbidden", err)
	}
	if err := c.Join(ctxT(t), "vip"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctxT(t), "room.vip", h); err != nil {
		t.Fatal(err)
	}
	r.restart(t)
	for ev := range events {
		if ev.Type == client.Connected {
			if ev.Resumed {
				t.Fatal("the new bridge resumed the old one's session")
			}
			break
		}
	}
	if err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.b.PublishRaw(ctxT(t), "room.vip", []byte(`"after"`)); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-got:
		if d != `"after"` {
			t.Fatalf("got %s", d)
		}
	case ev := <-events:
		t.Fatalf("event %+v instead of the message", ev)
	case <-time.After(5 * time.Second):
		t.Fatal("the subscription was not made again in the new session")
	}
}

// TestAbsentMeansZero: the server leaves out zero members (seq of a
// volatile publish, members of an empty room, attempt of a first
// delivery); the client reads them as zero.
func TestAbsentMeansZero(t *testing.T) {
	_, url := server(t, bridge.Expose("t.>", bridge.Subscribe, bridge.Publish), bridge.ExposeRooms(">", bridge.Presence))
	c, err := client.Dial(ctxT(t), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ms, err := c.Presence(ctxT(t), "empty"); err != nil || len(ms) != 0 {
		t.Errorf("presence of an empty room: %v, %v; want none", ms, err)
	}
	got := make(chan *client.Message, 2)
	if _, err := c.Subscribe(ctxT(t), "t.empty", func(_ context.Context, m *client.Message) error { got <- m; return nil }); err != nil {
		t.Fatalf("subscribe to a topic nothing was published to: %v", err)
	}
	if seq, err := c.Publish(ctxT(t), "t.empty", 1, client.Volatile(), client.Ack()); err != nil || seq != 0 {
		t.Errorf("volatile publish: seq %d, %v; want 0", seq, err)
	}
	if seq, err := c.Publish(ctxT(t), "t.empty", 2, client.Ack()); err != nil || seq != 1 {
		t.Errorf("publish: seq %d, %v; want 1", seq, err)
	}
	for _, want := range []uint64{0, 1} {
		m := <-got
		if m.Seq != want || m.Attempt != 1 || (m.Epoch == 0) != (want == 0) {
			t.Errorf("message %s: seq %d, epoch %d, attempt %d; want seq %d, attempt 1", m.Data, m.Seq, m.Epoch, m.Attempt, want)
		}
	}
}

// TestMessagesKept: messages a handler keeps stay as they came, with their
// data, topic and headers, while later batches are read into the reader's
// reused frames.
func TestMessagesKept(t *testing.T) {
	b, url := server(t, bridge.Expose("k.>", bridge.Subscribe, bridge.Publish))
	c, err := client.Dial(ctxT(t), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 500
	got := make(chan *client.Message, n)
	if _, err := c.Subscribe(ctxT(t), "k.>", func(_ context.Context, m *client.Message) error { got <- m; return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		topic := fmt.Sprintf("k.t%d", i%3)
		data := fmt.Sprintf(`{"i": %d, "s": "caf\u00e9 %d"}`, i, i) // spaces and escapes: as published
		if _, err := b.PublishRaw(ctxT(t), topic, []byte(data), bus.Headers(map[string]string{"h": fmt.Sprint(i)})); err != nil {
			t.Fatal(err)
		}
	}
	kept := make([]*client.Message, 0, n)
	for range n {
		select {
		case m := <-got:
			kept = append(kept, m)
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d messages, want %d", len(kept), n)
		}
	}
	seen := make(map[int]bool)
	for _, m := range kept { // in order per topic, not across topics
		var v struct {
			I int
			S string
		}
		if err := json.Unmarshal(m.Data, &v); err != nil || seen[v.I] || v.S != fmt.Sprintf("café %d", v.I) ||
			m.Topic != fmt.Sprintf("k.t%d", v.I%3) || m.Headers["h"] != fmt.Sprint(v.I) {
			t.Fatalf("topic %s, headers %v, data %s (%v)", m.Topic, m.Headers, m.Data, err)
		}
		seen[v.I] = true
	}
}
