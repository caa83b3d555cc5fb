package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/courierbus/courier/internal/browsertest"
)

// The browser test drives the chat page of two nodes in headless Chromium.
// It skips when no Chromium is installed, unless COURIER_REQUIRE_BROWSER=1,
// which makes a missing browser a failure. COURIER_CHROMIUM names the
// binary to use; COURIER_SCREENSHOT=/tmp/cluster.png also saves the
// screenshot of the page that failed over there.

const wait = 20 * time.Second // the longest any step may take

// page is one user's tab, in a browser context of its own.
type page struct {
	*browsertest.Tab
}

// pageState is what a failed wait shows of the chat page.
const pageState = `{state: chat.client && chat.client.state, url: chat.client && chat.client.url, room: chat.room,
	messages: [...document.querySelectorAll('#messages li')].map(e => e.className + ' ' + e.textContent),
	members: [...document.querySelectorAll('#members li')].map(e => e.textContent),
	errors: [...document.querySelectorAll('#errors .error')].map(e => e.textContent)}`

// open opens the chat at url as name, in the room lobby.
func open(t *testing.T, browser context.Context, url, name string) *page {
	t.Helper()
	p := &page{browsertest.NewTab(t, browser, name, url, wait, pageState)}
	p.Do(
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SetValue(chromedp.ID("name"), name),
		chromedp.SetValue(chromedp.ID("password"), "password of "+name),
		chromedp.SetValue(chromedp.ID("room"), "lobby"),
		chromedp.Click(chromedp.ID("enter")),
	)
	p.waitJS(`chat.client && chat.client.state === 'online' && chat.room === 'lobby' &&
		document.querySelector('#messages .empty, #messages .msg') !== null &&
		document.querySelector('#messages .empty')?.textContent !== 'Loading…'`, "the room to open")
	return p
}

func (p *page) waitJS(expr, what string) {
	p.T.Helper()
	p.WaitJS(wait, 50*time.Millisecond, expr, what)
}

func (p *page) say(text string) {
	p.T.Helper()
	p.Do(chromedp.SetValue(chromedp.ID("text"), text), chromedp.Click(chromedp.ID("send")))
}

// shown is a message as the page shows it.
type shown struct {
	Seq  int    `json:"seq"`
	From string `json:"from"`
	Text string `json:"text"`
}

// messages waits until the page shows n messages ordered by the server
// (not its own pending ones) and returns them as "from: text", checking
// that their seqs run from 1.
func (p *page) messages(n int) []string {
	p.T.Helper()
	p.waitJS(fmt.Sprintf(`document.querySelectorAll('#messages .msg:not(.pending)').length >= %d`, n),
		fmt.Sprintf("%d messages", n))
	ms := browsertest.Eval[[]shown](p.Tab, `[...document.querySelectorAll('#messages .msg:not(.pending)')].map(e => ({
		seq: +e.dataset.seq, from: e.querySelector('.from').textContent, text: e.querySelector('.text').textContent}))`)
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.From + ": " + m.Text
		if m.Seq != i+1 {
			p.T.Errorf("%s: message %d (%s) has seq %d, want %d", p.Name, i, out[i], m.Seq, i+1)
		}
	}
	return out
}

func (p *page) members() string {
	p.T.Helper()
	return strings.Join(browsertest.Eval[[]string](p.Tab, `[...document.querySelectorAll('#members li')].map(e => e.textContent)`), ",")
}

// checkConsole fails the test when the page logged an exception or error.
func (p *page) checkConsole(allow ...string) {
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

// TestBrowserFailover does what the README says: alice on node A and bob
// on node B chat; node B is stopped from the nodes' page (NATS goes on);
// bob's page moves to node C by itself and shows what alice said
// meanwhile, once each, in order, and the two go on chatting. Node B,
// started again from the page, serves the chat again.
func TestBrowserFailover(t *testing.T) {
	browser := browsertest.Start(t, 1100, 720)
	c := startCluster(t)
	nodeA, nodeB, nodeC := c.nodes[0], c.nodes[1], c.nodes[2]
	alice := open(t, browser, nodeA.url, "alice")
	bob := open(t, browser, nodeB.url, "bob")

	alice.waitJS(`[...document.querySelectorAll('#members li')].length === 2`, "bob in the member list")
	if got := alice.members(); got != "alice (you),bob" {
		t.Errorf("alice's member list: %q, want alice (you),bob", got)
	}
	alice.say("hi from A")
	bob.messages(1)
	bob.say("hi from B")
	want := []string{"alice: hi from A", "bob: hi from B"}
	for _, p := range []*page{alice, bob} {
		if got := p.messages(2); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s sees %v, want %v", p.Name, got, want)
		}
	}

	// Bob's page waits 2 to 6 seconds before its first attempt, so that
	// alice's messages surely go out while it is away.
	bobSession := browsertest.Eval[string](bob.Tab, `chat.client.session`)
	browsertest.Eval[bool](bob.Tab, `(() => {
		const c = chat.client;
		c._opts.minBackoff = c._opts.maxBackoff = 4000;
		window.connects = [];
		c.on('connect', (e) => connects.push({url: e.url, session: e.session, resumed: e.resumed}));
		return true;
	})()`)
	// Node B is stopped from the nodes' page, as the README says: any
	// node serves it.
	ctl := &page{browsertest.NewTab(t, browser, "operator", nodeA.url+"nodes/", wait, `document.body.innerText`)}
	ctl.Do(chromedp.Click(chromedp.ID("stop-B")))
	ctl.Do(chromedp.WaitVisible(chromedp.CSS("#node-B td.state.stopped"))) // on the page the form leads to
	bob.waitJS(`chat.client.state !== 'online'`, "bob offline")
	meanwhile := []string{"are you there?", "node B went away", "come back"}
	for _, s := range meanwhile {
		alice.say(s)
	}
	alice.messages(5)
	if n := browsertest.Eval[int](bob.Tab, `connects.length`); n != 0 {
		t.Errorf("bob's page was back before alice's messages went out: the test shows less than it should")
	}

	cURL := "ws://" + strings.TrimPrefix(nodeC.url, "http://") + "bus/"
	bob.waitJS(fmt.Sprintf(`chat.client.state === 'online' && chat.client.url === %q`, cURL), "bob online on node C")
	for _, s := range meanwhile {
		want = append(want, "alice: "+s)
	}
	if got := bob.messages(5); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("bob sees %v after moving to node C, want %v", got, want)
	}
	if got := browsertest.Eval[string](bob.Tab, `document.getElementById('node').textContent`); !strings.Contains(got, strings.TrimPrefix(cURL[:len(cURL)-len("/bus/")], "ws://")) {
		t.Errorf("bob's page says it is %q, want node C", got)
	}
	type connect struct {
		URL     string `json:"url"`
		Session string `json:"session"`
		Resumed bool   `json:"resumed"`
	}
	// The nodes share a SessionKey: node C takes bob's session id over
	// (not resumed: it holds none of the session's state).
	if got := browsertest.Eval[[]connect](bob.Tab, `connects`); len(got) != 1 || got[0].URL != cURL || got[0].Resumed || got[0].Session != bobSession {
		t.Errorf("bob's connects after node B stopped: %+v, want one to node C, session %q taken over", got, bobSession)
	}

	// The two go on chatting, bob now on node C.
	bob.say("back, via C")
	want = append(want, "bob: back, via C")
	for _, p := range []*page{alice, bob} {
		if got := p.messages(6); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s sees %v, want %v", p.Name, got, want)
		}
	}
	// Bob's session carried over to node C: alice sees one bob.
	alice.waitJS(`[...document.querySelectorAll('#members li')].map(e => e.textContent).join() === 'alice (you),bob'`,
		"one bob in alice's member list")
	if got := bob.members(); got != "alice,bob (you)" {
		t.Errorf("bob's member list on node C: %q, want alice,bob (you)", got)
	}
	time.Sleep(300 * time.Millisecond) // nothing more arrives
	for _, p := range []*page{alice, bob} {
		if got := p.messages(6); len(got) != 6 {
			t.Errorf("%s sees %d messages, want 6: %v", p.Name, len(got), got)
		}
		if d := browsertest.Eval[int](p.Tab, `chat.duplicates`); d != 0 {
			t.Errorf("%s got %d messages twice", p.Name, d)
		}
	}

	// A screenshot of bob's page after the move.
	ctx, cancel := context.WithTimeout(bob.Ctx, wait)
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	cancel()
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(t.TempDir(), "bob-on-node-c.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if p := os.Getenv("COURIER_SCREENSHOT"); p != "" {
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Error(err)
		}
	}

	// Node B starts again from the page, and serves its chat: carol signs
	// in there, sees what was said, and alice sees what she says.
	ctl.Do(chromedp.Click(chromedp.ID("start-B")))
	ctl.Do(chromedp.WaitVisible(chromedp.CSS("#node-B td.state.running")))
	carol := open(t, browser, nodeB.url, "carol")
	if got := carol.messages(6); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("carol on node B, started again, sees %v, want %v", got, want)
	}
	carol.say("hi from B, again")
	want = append(want, "carol: hi from B, again")
	if got := alice.messages(7); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("alice sees %v, want %v", got, want)
	}

	alice.checkConsole()
	carol.checkConsole()
	ctl.checkConsole()
	// Chromium logs the connection to node B that went away.
	bob.checkConsole("WebSocket connection to")
}
