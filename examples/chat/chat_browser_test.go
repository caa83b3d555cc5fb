package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/courierbus/courier/internal/browsertest"
)

// The browser tests drive the chat page in headless Chromium. They skip when
// no Chromium is installed, unless COURIER_REQUIRE_BROWSER=1, which makes a
// missing browser a failure. COURIER_CHROMIUM names the binary to use;
// COURIER_SCREENSHOT=/tmp/chat.png saves a screenshot of two users chatting.

const wait = 15 * time.Second // the longest any step may take

// startBrowser starts headless Chromium for one test (see
// internal/browsertest: it skips without Chromium unless
// COURIER_REQUIRE_BROWSER=1).
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	return browsertest.Start(t, 1100, 720)
}

// chatPage is one user's tab, in a browser context of its own.
type chatPage struct {
	*browsertest.Tab
}

// chatState is what a failed wait shows of the chat page.
const chatState = `{state: chat.client && chat.client.state, room: chat.room,
	messages: [...document.querySelectorAll('#messages li')].map(e => e.className + ' ' + e.textContent),
	errors: [...document.querySelectorAll('#errors .error')].map(e => e.textContent)}`

// newTab opens url in a new tab of its own browser context, and records
// what the page logs as errors.
func newTab(t *testing.T, browser context.Context, url, name string) *chatPage {
	t.Helper()
	return &chatPage{browsertest.NewTab(t, browser, name, url, wait, chatState)}
}

func openChat(t *testing.T, browser context.Context, ts *testServer, name, room string) *chatPage {
	t.Helper()
	p := newTab(t, browser, ts.base+"/", name)
	p.Do(
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SetValue(chromedp.ID("name"), name),
		chromedp.SetValue(chromedp.ID("password"), password(name)),
		chromedp.SetValue(chromedp.ID("room"), room),
		chromedp.Click(chromedp.ID("enter")),
	)
	p.waitJS(fmt.Sprintf(`chat.client && chat.client.state === 'online' && chat.room === %q &&
		document.querySelector('#messages .empty, #messages .msg') !== null &&
		document.querySelector('#messages .empty')?.textContent !== 'Loading…'`, room), "the room to open")
	return p
}

// eval evaluates a JavaScript expression on the page into v.
func eval[T any](p *chatPage, expr string) T {
	p.T.Helper()
	return browsertest.Eval[T](p.Tab, expr)
}

// waitJS waits until expr is truthy on the page.
func (p *chatPage) waitJS(expr, what string) {
	p.T.Helper()
	p.WaitJS(wait, 50*time.Millisecond, expr, what)
}

// checkConsole fails the test when the page logged an exception or error.
func (p *chatPage) checkConsole(allow ...string) {
	p.T.Helper()
next:
	for _, m := range p.Console() {
		for _, a := range allow {
			if strings.Contains(m, a) {
				continue next
			}
		}
		p.T.Errorf("%s's page logged: %s", p.Name, m)
	}
}

// say sends a message through the page's form.
func (p *chatPage) say(text string) {
	p.T.Helper()
	p.Do(
		chromedp.SetValue(chromedp.ID("text"), text),
		chromedp.Click(chromedp.ID("send")),
	)
}

// shown is a message as the page shows it.
type shown struct {
	Seq  int    `json:"seq"`
	From string `json:"from"`
	Text string `json:"text"`
}

func (s shown) String() string { return fmt.Sprintf("%d %s: %s", s.Seq, s.From, s.Text) }

// messages returns the messages the page shows, the server-ordered ones
// (not the pending ones of its own user).
func (p *chatPage) messages() []shown {
	p.T.Helper()
	return eval[[]shown](p, `[...document.querySelectorAll('#messages .msg:not(.pending)')].map(e => ({
		seq: +e.dataset.seq, from: e.querySelector('.from').textContent, text: e.querySelector('.text').textContent}))`)
}

// waitMessages waits until the page shows n messages and returns them.
func (p *chatPage) waitMessages(n int) []shown {
	p.T.Helper()
	p.waitJS(fmt.Sprintf(`document.querySelectorAll('#messages .msg:not(.pending)').length >= %d`, n),
		fmt.Sprintf("%d messages", n))
	return p.messages()
}

func (p *chatPage) members() []string {
	p.T.Helper()
	return eval[[]string](p, `[...document.querySelectorAll('#members li')].map(e => e.textContent)`)
}

func (p *chatPage) state() string {
	p.T.Helper()
	return eval[string](p, `document.getElementById('state').dataset.state`)
}

func texts(ms []shown) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.From + ": " + m.Text
	}
	return out
}

// TestBrowserChat: two users chat in a room and see each other in its
// member list; a third user in another room gets nothing of it.
func TestBrowserChat(t *testing.T) {
	browser := startBrowser(t)
	ts := startServer(t, config{memory: true})
	alice := openChat(t, browser, ts, "alice", "lobby")
	bob := openChat(t, browser, ts, "bob", "lobby")
	carol := openChat(t, browser, ts, "carol", "garden")

	alice.waitJS(`[...document.querySelectorAll('#members li')].length === 2`, "bob in the member list")
	if got := strings.Join(alice.members(), ","); got != "alice (you),bob" {
		t.Errorf("alice's member list: %q, want alice (you),bob", got)
	}
	if got := strings.Join(bob.members(), ","); got != "alice,bob (you)" {
		t.Errorf("bob's member list: %q, want alice,bob (you)", got)
	}

	alice.say("hi bob")
	bob.waitMessages(1)
	bob.say("hi alice, how are you?")
	alice.say("fine, thanks")
	want := []string{"alice: hi bob", "bob: hi alice, how are you?", "alice: fine, thanks"}
	for _, p := range []*chatPage{alice, bob} {
		got := p.waitMessages(3)
		if strings.Join(texts(got), "|") != strings.Join(want, "|") {
			t.Errorf("%s sees %v, want %v", p.Name, texts(got), want)
		}
		for i, m := range got {
			if m.Seq != i+1 {
				t.Errorf("%s: message %d has seq %d, want %d", p.Name, i, m.Seq, i+1)
			}
		}
	}
	if p := os.Getenv("COURIER_SCREENSHOT"); p != "" {
		ctx, cancel := context.WithTimeout(alice.Ctx, wait)
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		cancel()
		if err != nil {
			t.Errorf("screenshot: %v", err)
		} else if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Error(err)
		}
	}

	// carol is in another room: she sees its members only, and no message.
	// A message in her own room reaches her, so the lobby's three had
	// every chance to reach her first.
	if got := strings.Join(carol.members(), ","); got != "carol (you)" {
		t.Errorf("carol's member list: %q, want carol (you)", got)
	}
	carol.say("anyone in the garden?")
	got := carol.waitMessages(1)
	if len(got) != 1 || got[0].Text != "anyone in the garden?" {
		t.Errorf("carol sees %v, want only her own message", texts(got))
	}
	if n := len(alice.messages()); n != 3 {
		t.Errorf("alice sees %d messages, want 3: carol's is in another room", n)
	}
	// And the lobby's topic is closed to her: the server refuses it.
	code := eval[string](carol, `new Promise((resolve) => {
		const stop = chat.client.subscribe('chat.lobby', () => resolve('delivered'), {onError: (e) => resolve(e.code)});
		stop.ready.then(() => setTimeout(() => resolve('subscribed'), 500), () => {});
	})`)
	if code != "forbidden" {
		t.Errorf("carol subscribing to the lobby's topic: got %q, want forbidden", code)
	}

	// A user leaving the room leaves alice's member list, live.
	bob.Do(chromedp.SetValue(chromedp.ID("new-room"), "garden"), chromedp.Click(chromedp.ID("join")))
	alice.waitJS(`[...document.querySelectorAll('#members li')].length === 1`, "bob to leave the member list")
	carol.waitJS(`[...document.querySelectorAll('#members li')].map(e => e.textContent).join() === 'bob,carol (you)'`,
		"bob in the garden's member list")
	// History on joining: bob sees carol's earlier message.
	if got := bob.waitMessages(1); len(got) != 1 || got[0].Text != "anyone in the garden?" {
		t.Errorf("bob's history of the garden: %v", texts(got))
	}
	// The sender shown is the one the server authenticated: bob writing
	// "from": "carol", and even a forged courier-user header, shows as bob.
	eval[bool](bob, `chat.client.publish('chat.garden', {from: 'carol', text: 'I am carol', ts: Date.now()},
		{headers: {'courier-user': 'carol'}}).then(() => true)`)
	for _, p := range []*chatPage{bob, carol} {
		got := p.waitMessages(2)
		if len(got) != 2 || got[1].From != "bob" || got[1].Text != "I am carol" {
			t.Errorf("%s sees %v, want the last one from bob", p.Name, texts(got))
		}
	}
	if mine := eval[bool](carol, `document.querySelector('#messages .msg:last-child').classList.contains('mine')`); mine {
		t.Error("carol's page shows bob's forged message as hers")
	}
	for _, p := range []*chatPage{alice, bob, carol} {
		if d := eval[int](p, `chat.duplicates`); d != 0 {
			t.Errorf("%s got %d messages twice", p.Name, d)
		}
		p.checkConsole()
	}
}

// cutter is a TCP proxy in front of the chat server that can cut the
// network: cut closes every connection through it (the browser sees its
// socket fail, as when a network goes away) and refuses new ones until
// restore; freeze makes the connections through it go silent without
// closing, as a dead network path does.
type cutter struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]*atomic.Bool // frozen
	down  bool
}

func newCutter(t *testing.T, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, target: target, conns: make(map[net.Conn]*atomic.Bool)}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.accept()
	}()
	t.Cleanup(func() {
		ln.Close()
		c.cut()
		c.wg.Wait()
	})
	return c
}

func (c *cutter) base() string { return "http://" + c.ln.Addr().String() }

func (c *cutter) accept() {
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		frozen := new(atomic.Bool)
		c.mu.Lock()
		down := c.down
		if !down {
			c.conns[in] = frozen
		}
		c.mu.Unlock()
		if down {
			in.Close()
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.pipe(in, frozen)
		}()
	}
}

func (c *cutter) pipe(in net.Conn, frozen *atomic.Bool) {
	defer func() {
		c.mu.Lock()
		delete(c.conns, in)
		c.mu.Unlock()
		in.Close()
	}()
	out, err := net.DialTimeout("tcp", c.target, 5*time.Second)
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	forward := func(dst, src net.Conn) {
		defer func() { dst.Close(); done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			// While frozen, what arrives is swallowed: the path is dead.
			if n > 0 && !frozen.Load() {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go forward(out, in)
	go forward(in, out)
	<-done
	<-done
}

// freeze makes the open connections swallow everything from now on.
func (c *cutter) freeze() {
	c.mu.Lock()
	for _, f := range c.conns {
		f.Store(true)
	}
	c.mu.Unlock()
}

// cut drops every connection and refuses new ones.
func (c *cutter) cut() {
	c.mu.Lock()
	c.down = true
	for conn := range c.conns {
		conn.Close()
	}
	c.mu.Unlock()
}

func (c *cutter) restore() {
	c.mu.Lock()
	c.down = false
	c.mu.Unlock()
}

// TestBrowserOffline: a user's connection drops; what the room says
// meanwhile reaches the user after the network returns, in order, none
// twice, and what the user wrote while offline is sent then.
func TestBrowserOffline(t *testing.T) {
	browser := startBrowser(t)
	ts := startServer(t, config{memory: true})
	alice := openChat(t, browser, ts, "alice", "lobby")
	// bob reaches the server through a proxy that can cut his network.
	link := newCutter(t, strings.TrimPrefix(ts.base, "http://"))
	bob := openChat(t, browser, &testServer{base: link.base()}, "bob", "lobby")
	alice.say("before")
	bob.waitMessages(1)

	link.cut()
	bob.waitJS(`chat.client.state !== 'online' && document.getElementById('state').dataset.state !== 'online'`, "bob offline")

	alice.say("while you were away 1")
	alice.say("while you were away 2")
	alice.say("while you were away 3")
	alice.waitMessages(4)
	bob.say("sent while offline")
	if n := eval[int](bob, `document.querySelectorAll('#messages .msg.pending').length`); n != 1 {
		t.Errorf("bob's page shows %d pending messages while offline, want 1", n)
	}
	time.Sleep(1500 * time.Millisecond) // reconnect attempts fail meanwhile
	if s := bob.state(); s == "online" {
		t.Fatalf("bob is %s with the network off", s)
	}
	if got := bob.messages(); len(got) != 1 {
		t.Errorf("bob got %v while offline", texts(got))
	}

	link.restore()
	bob.waitJS(`chat.client.state === 'online'`, "bob back online")
	want := []string{"alice: before", "alice: while you were away 1", "alice: while you were away 2",
		"alice: while you were away 3", "bob: sent while offline"}
	for _, p := range []*chatPage{alice, bob} {
		got := p.waitMessages(5)
		if strings.Join(texts(got), "|") != strings.Join(want, "|") {
			t.Errorf("%s sees %v, want %v", p.Name, texts(got), want)
		}
		for i, m := range got {
			if m.Seq != i+1 {
				t.Errorf("%s: message %d has seq %d, want %d", p.Name, i, m.Seq, i+1)
			}
		}
		if d := eval[int](p, `chat.duplicates`); d != 0 {
			t.Errorf("%s got %d messages twice", p.Name, d)
		}
	}
	if n := eval[int](bob, `document.querySelectorAll('#messages .msg.pending').length`); n != 0 {
		t.Errorf("bob's page still shows %d pending messages", n)
	}
	// The session was resumed: same session id, still in the room.
	if got := strings.Join(alice.members(), ","); got != "alice (you),bob" {
		t.Errorf("alice's member list after bob came back: %q", got)
	}
	time.Sleep(300 * time.Millisecond) // nothing more arrives
	if got := bob.messages(); len(got) != 5 {
		t.Errorf("bob sees %d messages, want 5: %v", len(got), texts(got))
	}
	alice.checkConsole()
	// Chromium logs the failed reconnects while the network was off.
	bob.checkConsole("WebSocket connection to")
}

// TestBrowserForbidden: a publish to a topic the server does not expose
// shows the forbidden error on the page.
func TestBrowserForbidden(t *testing.T) {
	browser := startBrowser(t)
	ts := startServer(t, config{memory: true})
	alice := openChat(t, browser, ts, "alice", "lobby")
	alice.say("/announce the server is going down")
	alice.waitJS(`document.querySelector('#errors .error[data-code="forbidden"]') !== null`, "the forbidden error")
	// One sentence, in a row of its own that covers nothing: not the
	// member list, the rooms, the messages or the form.
	text := eval[string](alice, `document.querySelector('#errors .error[data-code="forbidden"] span').textContent`)
	if want := "Only the server can make announcements."; text != want {
		t.Errorf("error shown: %q, want %q", text, want)
	}
	overlaps := eval[[]string](alice, `(() => {
		const box = (e) => e.getBoundingClientRect();
		const err = box(document.querySelector('#errors .error[data-code="forbidden"]'));
		const hit = (r) => err.left < r.right && r.left < err.right && err.top < r.bottom && r.top < err.bottom;
		return ['members-pane', 'members', 'rooms-pane', 'messages', 'send-form', 'room-title']
			.filter((id) => hit(box(document.getElementById(id))));
	})()`)
	if len(overlaps) != 0 {
		t.Errorf("the error covers %v", overlaps)
	}
	// The page goes on working.
	alice.say("still here")
	if got := alice.waitMessages(1); got[0].Text != "still here" {
		t.Errorf("got %v", texts(got))
	}
	// A room name out of the exposed pattern is refused too.
	alice.Do(chromedp.SetValue(chromedp.ID("new-room"), "staff"), chromedp.Click(chromedp.ID("join")))
	alice.waitJS(`chat.room === 'staff' && chat.client.state === 'online'`, "the staff room")
	raw := eval[json.RawMessage](alice, `chat.client.join('staff.secret').then(() => 'joined', (e) => e.code)`)
	if string(raw) != `"forbidden"` {
		t.Errorf("join staff.secret: got %s, want forbidden", raw)
	}
	alice.checkConsole()
}
