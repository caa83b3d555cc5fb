package observe_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/internal/browsertest"
	"github.com/courierbus/courier/observe"
)

// The browser test drives the admin page in headless Chromium. It skips
// when no Chromium is installed, unless COURIER_REQUIRE_BROWSER=1, which
// makes a missing browser a failure. COURIER_CHROMIUM names the binary.

const browserWait = 15 * time.Second // the longest any step may take

// startBrowser starts headless Chromium for one test (see
// internal/browsertest: it skips without Chromium unless
// COURIER_REQUIRE_BROWSER=1).
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	return browsertest.Start(t, 1200, 900)
}

// tab is a page in a browser context of its own.
type tab struct {
	*browsertest.Tab
}

// tabState is what a failed wait shows of a page: its address, status line
// and client state.
const tabState = `{url: location.href,
	status: document.querySelector('#status')?.textContent,
	state: (globalThis.courierAdmin?.client || globalThis.c)?.state,
	events: globalThis.events,
	body: document.body?.innerText.slice(0, 300)}`

// openTab opens url in a tab of its own browser context.
func openTab(t *testing.T, browser context.Context, name, url string) *tab {
	t.Helper()
	return &tab{browsertest.NewTab(t, browser, name, url, browserWait, tabState)}
}

// eval evaluates a JavaScript expression (awaiting a promise) into a T.
func eval[T any](p *tab, expr string) T {
	p.T.Helper()
	return browsertest.Eval[T](p.Tab, expr)
}

// waitJS waits up to d until expr is truthy and returns how long it took.
func (p *tab) waitJS(d time.Duration, expr, what string) time.Duration {
	p.T.Helper()
	return p.WaitJS(d, 20*time.Millisecond, expr, what)
}

func (p *tab) checkConsole() {
	p.T.Helper()
	for _, m := range p.Console() {
		p.T.Errorf("%s logged: %s", p.Name, m)
	}
}

// clientPage is a bare page with a Courier client of the stack's bridge,
// as window.c; window.events records its connects and resumes.
const clientPage = `<!doctype html>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>client</title>
<script type="module">
import { connect } from '/bus/client.js';
window.events = [];
const c = connect('/bus/', { minBackoff: 100, maxBackoff: 300 });
c.on('connect', (e) => events.push({ type: 'connect', session: e.session, resumed: e.resumed }));
c.on('resume', (e) => events.push({ type: 'resume', session: e.session, resumed: e.resumed }));
c.on('disconnect', (e) => events.push({ type: 'disconnect', code: e.code }));
window.c = c;
</script>
`

// TestAdminPageInBrowser is the admin page's acceptance test in Chromium:
// a client connecting and joining a room shows within a second;
// re-driving a dead letter delivers it to its subscriber; disconnecting a
// client shows the client's resume.
func TestAdminPageInBrowser(t *testing.T) {
	browser := startBrowser(t)
	s := newStack(t, stackConfig{bridgeOpts: []bridge.Option{bridge.ExposeRooms("*", bridge.Join, bridge.Presence)}})
	withAdmin(t, s, observe.BasicAuth(adminUser, adminPass))
	s.mux.HandleFunc("GET /client.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, clientPage)
	})
	// The password goes in the address, as a user would type it into the
	// browser's dialog (headless Chromium cannot show one): the browser
	// sends it with the page's requests and its WebSocket handshake.
	adminURL := strings.Replace(s.srv.URL, "http://", "http://"+adminUser+":"+adminPass+"@", 1) + "/admin/"
	admin := openTab(t, browser, "admin page", adminURL)
	admin.waitJS(browserWait, `globalThis.courierAdmin && courierAdmin.snapshots > 0 &&
		document.querySelector('#status').dataset.state === 'live'`, "the admin page to go live")
	if got := eval[string](admin, `document.querySelector('#bridge-connections').textContent`); got != "0" {
		t.Fatalf("connections before any client: %q", got)
	}

	var sid string
	client := openTab(t, browser, "client page", s.srv.URL+"/client.html")
	t.Run("connect and join", func(t *testing.T) {
		client.waitJS(browserWait, `window.c && c.state === 'online'`, "the client to connect")
		took := admin.waitJS(time.Second, `document.querySelector('#bridge-connections').textContent === '1' &&
			document.querySelector('#bridge-sessions').textContent === '1'`, "the client's connection on the admin page")
		t.Logf("the connection showed after %v", took)
		sid = eval[string](client, `c.session`)
		eval[bool](client, `c.join('lobby').then(() => true)`)
		took = admin.waitJS(time.Second, fmt.Sprintf(`document.querySelector('[data-room="lobby"] [data-member=%q]') !== null &&
			document.querySelector('#sessions [data-session=%q]') !== null`, sid, sid), "the client in lobby on the admin page")
		t.Logf("the join showed after %v", took)
	})
	if t.Failed() {
		return
	}

	t.Run("redrive", func(t *testing.T) {
		var fail atomic.Bool
		fail.Store(true)
		got := deadLetterJob(t, s.bus, &fail, order{ID: 99})
		row := `document.querySelector('[data-dead="$dead.jobs#1"]')`
		admin.waitJS(5*time.Second, row+` !== null && `+row+`.textContent.includes('payment service said no')`,
			"the dead letter with its error on the admin page")
		fail.Store(false)
		eval[bool](admin, row+`.querySelector('button.redrive').click() || true`)
		select {
		case m := <-got:
			if m.Value.ID != 99 || m.Header(observe.RedrivenHeader) != "$dead.jobs#1" {
				t.Errorf("re-driven message: %+v, headers %v", m.Value, m.Headers())
			}
		case <-time.After(browserWait):
			t.Fatalf("the re-driven message did not reach the subscriber%s", admin.ConsoleText())
		}
		admin.waitJS(5*time.Second, row+`.querySelector('.redriven')?.textContent === 're-driven as #2'`,
			"the re-drive on the admin page")
	})

	t.Run("disconnect", func(t *testing.T) {
		resumedBefore := eval[string](admin, `document.querySelector('#bridge-resumed').textContent`)
		eval[bool](admin, fmt.Sprintf(`document.querySelector('#sessions [data-session=%q] button.disconnect').click() || true`, sid))
		client.waitJS(browserWait, fmt.Sprintf(`events.some((e) => e.type === 'disconnect' && e.code === 4009) &&
			events.some((e) => e.type === 'resume' && e.session === %q && e.resumed)`, sid),
			"the client to be disconnected with 4009 and resume its session")
		admin.waitJS(5*time.Second, fmt.Sprintf(`document.querySelector('#bridge-resumed').textContent !== %q &&
			document.querySelector('#sessions [data-session=%q]') !== null`, resumedBefore, sid),
			"the resume on the admin page")
	})
	admin.checkConsole()
	client.checkConsole()
}
