package bridge_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bus"
)

func dialStatus(t *testing.T, url string, h http.Header) int {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.Dial(url, h)
	if err == nil {
		ws.Close()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	return resp.StatusCode
}

func TestOrigin(t *testing.T) {
	e := newEnv(t, nil)
	host := strings.TrimPrefix(e.srv.URL, "http://")
	for _, tc := range []struct {
		name   string
		origin string
		want   int
	}{
		{"no origin", "", http.StatusSwitchingProtocols},
		{"same origin", "http://" + host, http.StatusSwitchingProtocols},
		{"other origin", "http://evil.example", http.StatusForbidden},
		{"other port", "http://127.0.0.1:1", http.StatusForbidden},
		{"garbage", "::", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			if got := dialStatus(t, e.url, h); got != tc.want {
				t.Fatalf("got HTTP %d, want %d", got, tc.want)
			}
		})
	}
	e2 := newEnv(t, nil, bridge.AllowOrigins("https://app.example"))
	if got := dialStatus(t, e2.url, http.Header{"Origin": {"https://app.example"}}); got != http.StatusSwitchingProtocols {
		t.Fatalf("allowed origin: HTTP %d", got)
	}
	if got := dialStatus(t, e2.url, http.Header{"Origin": {"https://evil.example"}}); got != http.StatusForbidden {
		t.Fatalf("other origin: HTTP %d", got)
	}
	if s := e.br.Stats(); s.Refused < 3 {
		t.Fatalf("stats %+v: refusals not counted", s)
	}
}

func TestAuthenticate(t *testing.T) {
	e := newEnv(t, nil,
		bridge.Expose("chat.>", bridge.Subscribe),
		bridge.ExposeRooms("lobby", bridge.Join, bridge.Presence),
		bridge.Authenticate(func(r *http.Request) (bridge.Identity, error) {
			switch tok := r.Header.Get("Authorization"); tok {
			case "":
				return bridge.Identity{}, errors.New("no token")
			case "Bearer banned":
				return bridge.Identity{}, bridge.ErrForbidden
			case "Bearer panic":
				panic("hook bug")
			default:
				return bridge.Identity{ID: strings.TrimPrefix(tok, "Bearer ")}, nil
			}
		}))
	for _, tc := range []struct {
		tok  string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer banned", http.StatusForbidden},
		{"Bearer panic", http.StatusUnauthorized},
		{"Bearer alice", http.StatusSwitchingProtocols},
	} {
		h := http.Header{}
		if tc.tok != "" {
			h.Set("Authorization", tc.tok)
		}
		if got := dialStatus(t, e.url, h); got != tc.want {
			t.Fatalf("%q: got HTTP %d, want %d", tc.tok, got, tc.want)
		}
	}
	// The identity reaches presence and Identity.
	c := e.dial(client.Header(http.Header{"Authorization": {"Bearer alice"}}))
	if err := c.Join(ctxT(t), "lobby"); err != nil {
		t.Fatal(err)
	}
	ms, err := c.Presence(ctxT(t), "lobby")
	if err != nil || len(ms) != 1 || ms[0].User != "alice" || ms[0].Member != c.SessionID() {
		t.Fatalf("presence %+v, %v", ms, err)
	}
	if id, ok := e.br.Identity(c.SessionID()); !ok || id.ID != "alice" {
		t.Fatalf("Identity: %+v %v", id, ok)
	}
	// A resume token is bound to its identity: bob cannot take alice's
	// session with it.
	r := e.raw(http.Header{"Authorization": {"Bearer alice"}})
	r.send(`{"op":"hello","v":1,"id":"h"}`)
	w := r.answer("h")
	r2 := e.raw(http.Header{"Authorization": {"Bearer bob"}})
	r2.send(`{"op":"hello","v":1,"id":"h","resume":"` + w.Resume + `"}`)
	if w2 := r2.answer("h"); w2.Session == w.Session || *w2.Resumed {
		t.Fatalf("bob resumed alice's session: %+v", w2)
	}
	// A forged token is worth nothing either.
	r3 := e.raw(http.Header{"Authorization": {"Bearer alice"}})
	r3.send(`{"op":"hello","v":1,"id":"h","resume":"` + w.Session + `.AAAAAAAAAAAAAAAAAAAAAAAA"}`)
	if w3 := r3.answer("h"); w3.Session == w.Session || *w3.Resumed {
		t.Fatalf("forged token resumed: %+v", w3)
	}
	r.alive()
}

func TestHTTP(t *testing.T) {
	e := newEnv(t, nil)
	get := func(path string) (*http.Response, string) {
		resp, err := http.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("/bus/client.js")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || !strings.Contains(body, "export") {
		t.Fatalf("client.js: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if resp, _ := get("/bus/"); resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET: HTTP %d", resp.StatusCode)
	}
	e.br.Close()
	if got := dialStatus(t, e.url, nil); got != http.StatusServiceUnavailable {
		t.Fatalf("after Close: HTTP %d", got)
	}
	if _, err := e.br.Request(context.Background(), "x", "t", []byte("1")); !errors.Is(err, bridge.ErrClosed) {
		t.Fatalf("Request after Close: %v", err)
	}
}

// TestCloseWaits: melody's Close returns at once and leaves its
// goroutines running; the bridge's Close returns after every connection
// and goroutine of the bridge has ended.
func TestCloseWaits(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	b, err := bus.New()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	e := &env{t: t, bus: b}
	e.br, err = bridge.New(b, bridge.Expose(">", bridge.Subscribe))
	if err != nil {
		t.Fatal(err)
	}
	e.srv = newServer(e.br)
	e.url = "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/bus/"
	var conns []*rawConn
	for range 20 {
		r, _ := e.rawHello()
		r.send(`{"op":"subscribe","sub":"s","pattern":"a.>"}`)
		conns = append(conns, r)
	}
	for _, r := range conns {
		r.alive()
	}
	e.srv.Close() // leaves hijacked connections alone
	e.br.Close()
	if s := e.br.Stats(); s.Connections != 0 || s.Sessions != 0 || s.Routes != 0 {
		t.Fatalf("after Close: %+v", s)
	}
	for _, r := range conns {
		r.ws.Close()
	}
	goleak.VerifyNone(t, ignore)
}
