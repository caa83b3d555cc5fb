package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/examples/internal/chatapp"
)

// testServer is the chat served on 127.0.0.1 by serve, as run does.
type testServer struct {
	base string // http://127.0.0.1:port
	ws   string // ws://127.0.0.1:port/bus/
	stop func()
}

// testHashCost is the PBKDF2 cost of the tests' passwords: the default
// takes seconds a hash under the race detector. TestDefaultHashCost signs
// in at the default.
const testHashCost = 1000

func startServer(t *testing.T, cfg config) *testServer {
	t.Helper()
	if cfg.accounts == nil {
		cfg.accounts = chatapp.NewAccounts(chatapp.HashCost(testHashCost))
	}
	s, err := newServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, s, cfg.timeout) }()
	var once sync.Once
	ts := &testServer{
		base: "http://" + ln.Addr().String(),
		ws:   "ws://" + ln.Addr().String() + "/bus/",
	}
	ts.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("serve did not return within 15s of its context ending")
			}
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

// chatMsg is a message as a user sees it: its text and its sender, which
// the server set (the courier-user header), never a "from" of the data.
type chatMsg struct {
	From string
	Text string
}

// user is a Go client of the chat that records what it receives.
type user struct {
	t    *testing.T
	c    *client.Client
	mu   sync.Mutex
	got  []chatMsg
	wake chan struct{}
}

// password is the password of name in the tests.
func password(name string) string { return "password of " + name }

// dial signs in as name, with its test password, and connects with the
// session cookie, as the page does.
func dial(t *testing.T, ts *testServer, name string) *user {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cookie := signIn(t, ts, name, password(name))
	c, err := client.Dial(ctx, ts.ws, client.Header(http.Header{"Origin": {ts.base}, "Cookie": {cookie}}))
	if err != nil {
		t.Fatalf("dial as %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return &user{t: t, c: c, wake: make(chan struct{}, 1)}
}

func (u *user) subscribe(ctx context.Context, room string, opts ...client.SubscribeOption) {
	u.t.Helper()
	_, err := u.c.Subscribe(ctx, chatPrefix+room, func(_ context.Context, m *client.Message) error {
		var data struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(m.Data, &data); err != nil {
			return err
		}
		cm := chatMsg{From: m.Headers[client.HeaderUser], Text: data.Text}
		u.mu.Lock()
		u.got = append(u.got, cm)
		u.mu.Unlock()
		select {
		case u.wake <- struct{}{}:
		default:
		}
		return nil
	}, opts...)
	if err != nil {
		u.t.Fatalf("subscribe %s: %v", room, err)
	}
}

func (u *user) enter(ctx context.Context, room string) {
	u.t.Helper()
	if err := u.c.Join(ctx, room); err != nil {
		u.t.Fatalf("join %s: %v", room, err)
	}
	u.subscribe(ctx, room)
}

// say publishes text to room as the page does (it does not say who sends
// it: the server does).
func (u *user) say(ctx context.Context, room, text string) {
	u.t.Helper()
	if _, err := u.c.Publish(ctx, chatPrefix+room, map[string]string{"text": text}, client.Ack()); err != nil {
		u.t.Fatalf("publish to %s: %v", room, err)
	}
}

// waitFor waits until the user has received n messages and returns them.
func (u *user) waitFor(n int, d time.Duration) []chatMsg {
	u.t.Helper()
	deadline := time.After(d)
	for {
		u.mu.Lock()
		got := append([]chatMsg(nil), u.got...)
		u.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-u.wake:
		case <-deadline:
			u.t.Fatalf("got %d messages within %v, want %d: %v", len(got), d, n, got)
		}
	}
}

func (u *user) received() []chatMsg {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]chatMsg(nil), u.got...)
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// bodyOf is the body of a GET of url.
func bodyOf(t *testing.T, url string) string {
	t.Helper()
	_, body := get(t, url)
	return body
}

func TestServesPageAndClient(t *testing.T) {
	ts := startServer(t, config{memory: true})
	resp, body := get(t, ts.base+"/")
	if resp.StatusCode != 200 || !strings.Contains(body, "<title>Courier chat</title>") {
		t.Fatalf("GET /: status %d, body starts %.80q", resp.StatusCode, body)
	}
	if !strings.Contains(body, `<script type="module" src="./chat.js"></script>`) {
		t.Error("the page does not load its script")
	}
	resp, body = get(t, ts.base+"/chat.js")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/javascript") {
		t.Fatalf("GET /chat.js: status %d, Content-Type %q", resp.StatusCode, ct)
	}
	if !strings.Contains(body, "import { connect } from './bus/client.js'") {
		t.Error("the page's script does not load courier.js from the bridge")
	}
	resp, body = get(t, ts.base+"/bus/client.js")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/javascript") {
		t.Fatalf("GET /bus/client.js: status %d, Content-Type %q", resp.StatusCode, ct)
	}
	if !strings.Contains(body, "export function connect(") {
		t.Error("client.js is not the courier browser client")
	}
	// The page's icon comes from the server: its CSP refuses a data: URL.
	if !strings.Contains(bodyOf(t, ts.base+"/"), `<link rel="icon" href="./favicon.svg"`) {
		t.Error("the page does not take its icon from /favicon.svg")
	}
	resp, body = get(t, ts.base+"/favicon.svg")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "image/svg+xml" || !strings.HasPrefix(body, "<svg") {
		t.Errorf("GET /favicon.svg: status %d, Content-Type %q", resp.StatusCode, ct)
	}
	if resp, _ := get(t, ts.base+"/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope: status %d, want 404", resp.StatusCode)
	}
}

func TestTwoClientsChat(t *testing.T) {
	ts := startServer(t, config{memory: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice, bob, carol := dial(t, ts, "alice"), dial(t, ts, "bob"), dial(t, ts, "carol")
	alice.enter(ctx, "lobby")
	bob.enter(ctx, "lobby")
	// carol is in another room, and may not read the lobby's topic.
	carol.enter(ctx, "garden")
	_, err := carol.c.Subscribe(ctx, chatPrefix+"lobby", func(context.Context, *client.Message) error { return nil })
	if !errors.Is(err, client.ErrForbidden) {
		t.Errorf("carol subscribing to the lobby: got %v, want forbidden", err)
	}
	if _, err := carol.c.Publish(ctx, chatPrefix+"lobby", map[string]string{"text": "hi"}, client.Ack()); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("carol publishing to the lobby: got %v, want forbidden", err)
	}

	alice.say(ctx, "lobby", "hi bob")
	bob.say(ctx, "lobby", "hi alice")
	want := []chatMsg{{"alice", "hi bob"}, {"bob", "hi alice"}}
	for _, u := range []*user{alice, bob} {
		got := u.waitFor(2, 5*time.Second)
		if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("got %v, want %v", got, want)
		}
	}

	members, err := alice.c.Presence(ctx, "lobby")
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, m := range members {
		users = append(users, m.User)
	}
	if strings.Join(slices.Sorted(slices.Values(users)), ",") != "alice,bob" {
		t.Errorf("lobby members %v, want alice and bob", users)
	}

	// The room's history end, which the page subscribes a little before.
	raw, err := bob.c.Request(ctx, roomPosition, map[string]string{"room": "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	var pos position
	if err := json.Unmarshal(raw, &pos); err != nil {
		t.Fatal(err)
	}
	if pos.Seq != 2 || pos.Epoch == "" || pos.History != 50 {
		t.Errorf("rooms.position: got %+v, want seq 2, an epoch and history 50", pos)
	}
	raw, err = bob.c.Request(ctx, roomsList, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	var rooms []roomInfo
	if err := json.Unmarshal(raw, &rooms); err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 2 || rooms[0] != (roomInfo{"garden", 1}) || rooms[1] != (roomInfo{"lobby", 2}) {
		t.Errorf("rooms.list: got %+v, want garden (1) and lobby (2)", rooms)
	}

	// carol has a topic of her own room only: a later message reaches bob,
	// and nothing reached carol meanwhile.
	alice.say(ctx, "lobby", "still there?")
	bob.waitFor(3, 5*time.Second)
	if got := carol.received(); len(got) != 0 {
		t.Errorf("carol is not in the lobby and got %v", got)
	}

	// Not exposed to clients.
	_, err = alice.c.Publish(ctx, adminTopic, map[string]string{"text": "hello all"}, client.Ack())
	if !errors.Is(err, client.ErrForbidden) {
		t.Errorf("publish to %s: got %v, want forbidden", adminTopic, err)
	}
	if err := alice.c.Join(ctx, "staff.only"); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("join staff.only: got %v, want forbidden", err)
	}
}

// TestForgedSender: the sender a user sees is the name the server
// authenticated, whatever the message says: a "from" in the data or a
// forged courier-user header changes nothing.
func TestForgedSender(t *testing.T) {
	ts := startServer(t, config{memory: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice, bob := dial(t, ts, "alice"), dial(t, ts, "bob")
	alice.enter(ctx, "lobby")
	bob.enter(ctx, "lobby")
	forged := map[string]string{"from": "alice", "text": "I am alice"}
	if _, err := bob.c.Publish(ctx, chatPrefix+"lobby", forged, client.Ack(),
		client.Headers(map[string]string{client.HeaderUser: "alice"})); err != nil {
		t.Fatal(err)
	}
	want := chatMsg{From: "bob", Text: "I am alice"}
	for _, u := range []*user{alice, bob} {
		if got := u.waitFor(1, 5*time.Second); got[0] != want {
			t.Errorf("got %+v, want %+v", got[0], want)
		}
	}
}

// TestAuthorizationPerSession: a room's topic is open to the sessions in
// the room, not to every session of a user who has one there.
func TestAuthorizationPerSession(t *testing.T) {
	ts := startServer(t, config{memory: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	inRoom, elsewhere := dial(t, ts, "alice"), dial(t, ts, "alice") // two tabs of one user
	inRoom.enter(ctx, "lobby")
	elsewhere.enter(ctx, "garden")
	_, err := elsewhere.c.Subscribe(ctx, chatPrefix+"lobby", func(context.Context, *client.Message) error { return nil })
	if !errors.Is(err, client.ErrForbidden) {
		t.Errorf("alice's other session subscribing to the lobby: got %v, want forbidden", err)
	}
	if _, err := elsewhere.c.Publish(ctx, chatPrefix+"lobby", map[string]string{"text": "hi"}, client.Ack()); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("alice's other session publishing to the lobby: got %v, want forbidden", err)
	}
	inRoom.say(ctx, "lobby", "only here")
	if got := inRoom.waitFor(1, 5*time.Second); got[0] != (chatMsg{"alice", "only here"}) {
		t.Errorf("got %v", got)
	}
	// Leaving the room closes its topic to the session.
	if err := inRoom.c.Leave(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	if _, err := inRoom.c.Publish(ctx, chatPrefix+"lobby", map[string]string{"text": "hi"}, client.Ack()); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("publishing after leaving the room: got %v, want forbidden", err)
	}
}

// TestHistoryOutlivesRestart keeps the messages in Badger: a server
// opened again on the same directory serves them from the same epoch.
func TestHistoryOutlivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := startServer(t, config{dataDir: dir})
	alice := dial(t, ts, "alice")
	alice.enter(ctx, "lobby")
	for _, text := range []string{"one", "two", "three"} {
		alice.say(ctx, "lobby", text)
	}
	alice.waitFor(3, 5*time.Second)
	raw, err := alice.c.Request(ctx, roomPosition, map[string]string{"room": "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	var before position
	json.Unmarshal(raw, &before)
	alice.c.Close()
	ts.stop()

	ts = startServer(t, config{dataDir: dir, history: 2})
	bob := dial(t, ts, "bob")
	raw, err = bob.c.Request(ctx, roomPosition, map[string]string{"room": "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	var after position
	json.Unmarshal(raw, &after)
	if after.Epoch != before.Epoch || after.Seq != 3 || after.History != 2 {
		t.Fatalf("after a restart: got %+v, want epoch %s, seq 3, history 2", after, before.Epoch)
	}
	// What the page does: the last History messages.
	if err := bob.c.Join(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	bob.subscribe(ctx, "lobby", client.StartSeq(after.Seq-uint64(after.History)+1))
	got := bob.waitFor(2, 5*time.Second)
	if len(got) != 2 || got[0].Text != "two" || got[1].Text != "three" {
		t.Errorf("history after a restart: got %v, want two, three", got)
	}
}

// TestSocketOutlivesHTTPTimeouts checks that the http.Server's read and
// write timeouts do not cut WebSocket connections.
func TestSocketOutlivesHTTPTimeouts(t *testing.T) {
	ts := startServer(t, config{memory: true, timeout: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice, bob := dial(t, ts, "alice"), dial(t, ts, "bob")
	alice.enter(ctx, "lobby")
	bob.enter(ctx, "lobby")
	time.Sleep(time.Second)
	alice.say(ctx, "lobby", "after the timeout")
	got := bob.waitFor(1, 5*time.Second)
	if got[0].Text != "after the timeout" {
		t.Errorf("got %v", got)
	}
	if s := alice.c.SessionID(); s == "" {
		t.Error("no session")
	}
}

func TestRunPrintsURL(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, config{addr: "127.0.0.1:0", memory: true}, pw)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var url string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "chat: open "); ok {
			url = u
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		cancel()
		<-done
		t.Fatalf("run printed no URL on 127.0.0.1 (got %q)", url)
	}
	resp, body := get(t, url)
	if resp.StatusCode != 200 || !strings.Contains(body, "Courier chat") {
		t.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}
