package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/examples/internal/chatapp"
)

// signInAs posts a sign-in as the page does and returns the status, the
// answer's name or error, and the session cookie set ("name=value").
func signInAs(t *testing.T, ts *testServer, name, pw string, header http.Header) (status int, answer, cookie string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"name": name, "password": pw})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // a hash takes seconds under -race
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.base+"/signin", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", ts.base)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct{ Name, Error string }
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("sign-in as %q: %d %q is not JSON", name, resp.StatusCode, raw)
	}
	for _, c := range resp.Cookies() {
		if c.Name == chatapp.CookieName {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("the session cookie is not HttpOnly and SameSite=Strict: %v", c)
			}
			cookie = c.Name + "=" + c.Value
		}
	}
	if got.Name != "" {
		return resp.StatusCode, got.Name, cookie
	}
	return resp.StatusCode, got.Error, cookie
}

// signIn signs in as name and returns the session cookie.
func signIn(t *testing.T, ts *testServer, name, pw string) string {
	t.Helper()
	status, answer, cookie := signInAs(t, ts, name, pw, nil)
	if status != http.StatusOK || cookie == "" {
		t.Fatalf("sign in as %s: %d %q", name, status, answer)
	}
	return cookie
}

// TestSignIn: the first sign-in with a name sets its password; a later
// one with another password is refused, in any case of the name; "admin"
// is no page's to claim; only JSON from the chat's own origin is taken.
func TestSignIn(t *testing.T) {
	ts := startServer(t, config{memory: true})
	for _, tc := range []struct {
		name, pw string
		header   http.Header
		status   int
		answer   string // the name signed in as, or the error
	}{
		{"alice", "alice's secret", nil, http.StatusOK, "alice"},
		{"alice", "alice's secret", nil, http.StatusOK, "alice"},
		{"alice", "mallory's guess", nil, http.StatusUnauthorized, "wrong password for this name"},
		{"ALICE", "mallory's guess", nil, http.StatusUnauthorized, "wrong password for this name"},
		{" Alice ", "alice's secret", nil, http.StatusOK, "alice"},
		{"admin", "admin's secret", nil, http.StatusForbidden, "this name is reserved"},
		{"Admin", "admin's secret", nil, http.StatusForbidden, "this name is reserved"},
		{"bob", "short", nil, http.StatusBadRequest, "a password has 8 to 128 bytes"},
		{"<script>", "a long password", nil, http.StatusBadRequest, `'<' is not allowed in a name`},
		{"bob", "bob's secret", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			http.StatusUnsupportedMediaType, "send JSON"},
		{"bob", "bob's secret", http.Header{"Origin": {"http://evil.example"}},
			http.StatusForbidden, "sign in from the chat's own page"},
		{"bob", "bob's secret", nil, http.StatusOK, "bob"},
	} {
		status, answer, cookie := signInAs(t, ts, tc.name, tc.pw, tc.header)
		if status != tc.status || answer != tc.answer {
			t.Errorf("sign in as %q with %q: got %d %q, want %d %q", tc.name, tc.pw, status, answer, tc.status, tc.answer)
		}
		if (cookie != "") != (status == http.StatusOK) {
			t.Errorf("sign in as %q with %q: %d with cookie %q", tc.name, tc.pw, status, cookie)
		}
	}
}

// TestConnectNeedsSignIn: the bridge lets in only a valid session cookie;
// the hello's auth payload proves nothing.
func TestConnectNeedsSignIn(t *testing.T) {
	ts := startServer(t, config{memory: true})
	cookie := signIn(t, ts, "alice", password("alice"))
	// The cookie's name part says bob; its signature is alice's.
	_, rest, _ := strings.Cut(strings.TrimPrefix(cookie, chatapp.CookieName+"="), ".")
	forged := chatapp.CookieName + "=" + base64.RawURLEncoding.EncodeToString([]byte("bob")) + "." + rest
	for _, tc := range []struct {
		what   string
		cookie string
		auth   any
	}{
		{"no cookie", "", nil},
		{"a name in the hello", "", map[string]string{"name": "alice"}},
		{"a forged cookie", forged, nil},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		h := http.Header{"Origin": {ts.base}}
		if tc.cookie != "" {
			h.Set("Cookie", tc.cookie)
		}
		opts := []client.Option{client.Header(h)}
		if tc.auth != nil {
			opts = append(opts, client.Auth(tc.auth))
		}
		c, err := client.Dial(ctx, ts.ws, opts...)
		cancel()
		if err == nil {
			c.Close()
			t.Errorf("%s: connected, want unauthorized", tc.what)
		} else if !errors.Is(err, client.ErrUnauthorized) {
			t.Errorf("%s: got %v, want unauthorized", tc.what, err)
		}
	}
}

// rawConn is a WebSocket connection to the bridge that speaks frames.
type rawConn struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialRaw(t *testing.T, ts *testServer, cookie string) *rawConn {
	t.Helper()
	h := http.Header{"Origin": {ts.base}}
	if cookie != "" {
		h.Set("Cookie", cookie)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, ts.ws, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return &rawConn{t: t, ws: ws}
}

// hello sends a hello with the resume token and returns the answer.
func (c *rawConn) hello(resume string) map[string]any {
	c.t.Helper()
	if err := c.ws.WriteJSON(map[string]any{"op": "hello", "v": 1, "id": "h", "resume": resume}); err != nil {
		c.t.Fatal(err)
	}
	c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatal(err)
	}
	var frames []map[string]any
	if bytes.HasPrefix(msg, []byte("[")) {
		err = json.Unmarshal(msg, &frames)
	} else {
		frames = make([]map[string]any, 1)
		err = json.Unmarshal(msg, &frames[0])
	}
	if err != nil || len(frames) == 0 {
		c.t.Fatalf("answer to hello: %q", msg)
	}
	return frames[0]
}

// TestStolenResumeToken: a resume token is bound to the identity the
// session cookie proves. Without alice's cookie her token resumes nothing:
// no cookie is refused, and mallory's cookie gets a session of her own;
// alice's cookie with it resumes her session.
func TestStolenResumeToken(t *testing.T) {
	ts := startServer(t, config{memory: true})
	alice := signIn(t, ts, "alice", password("alice"))
	mallory := signIn(t, ts, "mallory", password("mallory"))

	first := dialRaw(t, ts, alice)
	w := first.hello("")
	session, token := w["session"], w["resume"].(string)
	if w["op"] != "welcome" || token == "" {
		t.Fatalf("alice's hello: %v", w)
	}
	first.ws.Close() // dropped: the session waits for a resume

	if got := dialRaw(t, ts, "").hello(token); got["op"] != "error" || got["code"] != "unauthorized" {
		t.Errorf("the token without a cookie: %v, want unauthorized", got)
	}
	got := dialRaw(t, ts, mallory).hello(token)
	if got["op"] != "welcome" || got["session"] == session || got["resumed"] == true {
		t.Errorf("the token with mallory's cookie: %v, want a new session, not alice's %v", got, session)
	}
	got = dialRaw(t, ts, alice).hello(token)
	if got["op"] != "welcome" || got["session"] != session || got["resumed"] != true {
		t.Errorf("the token with alice's cookie: %v, want her session %v resumed", got, session)
	}
}

// TestDefaultHashCost: the chat as run, with the default cost, signs in
// and checks passwords. (The other tests lower the cost.)
func TestDefaultHashCost(t *testing.T) {
	ts := startServer(t, config{memory: true, accounts: chatapp.NewAccounts()})
	signIn(t, ts, "alice", password("alice"))
	if status, answer, _ := signInAs(t, ts, "alice", "mallory's guess", nil); status != http.StatusUnauthorized {
		t.Errorf("a wrong password at the default cost: %d %q, want 401", status, answer)
	}
}
