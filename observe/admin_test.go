package observe_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/observe"
)

const (
	adminUser = "admin"
	adminPass = "s3cret"
)

// withAdmin mounts an admin at /admin/ on the stack.
func withAdmin(t testing.TB, s *stack, opts ...observe.AdminOption) *observe.Admin {
	t.Helper()
	a, err := observe.NewAdmin(s.bus, append([]observe.AdminOption{observe.WithBridge(s.br)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	s.onClose(func() { a.Close() })
	s.mux.Handle("/admin/", a)
	return a
}

// do sends a request to the stack's server and returns the status, the
// headers and the body.
func do(t testing.TB, s *stack, method, path string, body string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "auth" {
			u, p, _ := strings.Cut(v, ":")
			req.SetBasicAuth(u, p)
			continue
		}
		req.Header.Set(k, v)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(data)
}

var goodAuth = map[string]string{"auth": adminUser + ":" + adminPass}

// action posts an admin action as the page does.
func action(t testing.TB, s *stack, name string, body any) (int, map[string]any) {
	t.Helper()
	data, _ := json.Marshal(body)
	status, _, out := do(t, s, http.MethodPost, "/admin/api/"+name, string(data), map[string]string{
		"auth": adminUser + ":" + adminPass, "Content-Type": "application/json", "X-Courier-Admin": "1",
	})
	var ans map[string]any
	json.Unmarshal([]byte(out), &ans)
	return status, ans
}

func TestAdminRefusesWithoutHook(t *testing.T) {
	s := newStack(t, stackConfig{})
	withAdmin(t, s) // no Authorize, no BasicAuth
	for _, path := range []string{"/admin/", "/admin/admin.js", "/admin/ws/client.js", "/admin/ws/", "/admin/api/watch"} {
		status, _, body := do(t, s, http.MethodGet, path, "", goodAuth)
		if status != http.StatusForbidden || !strings.Contains(body, "no authorization hook") {
			t.Errorf("GET %s: got %d %q, want 403 saying there is no hook", path, status, body)
		}
	}
	// Its WebSocket refuses too.
	_, err := client.Dial(ctxT(t), s.wsURL()[:len(s.wsURL())-len("/bus/")]+"/admin/ws/",
		client.Header(http.Header{"Authorization": {"Basic YWRtaW46czNjcmV0"}}))
	if err == nil {
		t.Error("the admin's WebSocket accepted a client without a hook")
	}
}

func TestAdminPassword(t *testing.T) {
	s := newStack(t, stackConfig{})
	a := withAdmin(t, s, observe.BasicAuth(adminUser, adminPass))
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"none", nil, http.StatusUnauthorized},
		{"wrong password", map[string]string{"auth": adminUser + ":wrong"}, http.StatusUnauthorized},
		{"wrong user", map[string]string{"auth": "root:" + adminPass}, http.StatusUnauthorized},
		{"right", goodAuth, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := do(t, s, http.MethodGet, "/admin/", "", tc.hdr)
			if status != tc.want {
				t.Fatalf("got %d, want %d", status, tc.want)
			}
			if status == http.StatusUnauthorized {
				if !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("401 without a Basic challenge: %q", hdr.Get("WWW-Authenticate"))
				}
				if strings.Contains(body, "<html") {
					t.Error("401 carries the page")
				}
			} else if !strings.Contains(body, "<title>Courier admin</title>") || !strings.Contains(hdr.Get("Content-Security-Policy"), "script-src 'self'") {
				t.Errorf("page: %q, CSP %q", body[:min(len(body), 80)], hdr.Get("Content-Security-Policy"))
			}
		})
	}
	// The page's files, and the browser client of its bridge.
	for path, want := range map[string]string{
		"/admin/admin.js":     "import { connect } from './ws/client.js'",
		"/admin/admin.css":    ":root",
		"/admin/ws/client.js": "export function connect",
	} {
		status, _, body := do(t, s, http.MethodGet, path, "", goodAuth)
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, body without %q", path, status, want)
		}
		if status, _, _ := do(t, s, http.MethodGet, path, "", map[string]string{"auth": adminUser + ":wrong"}); status != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong password: %d", path, status)
		}
	}
	// The WebSocket refuses a wrong password.
	base := strings.TrimSuffix(s.wsURL(), "/bus/")
	if _, err := client.Dial(ctxT(t), base+"/admin/ws/", client.Header(http.Header{"Authorization": {basic(adminUser, "wrong")}})); err == nil {
		t.Error("the admin's WebSocket accepted a wrong password")
	}
	c, err := client.Dial(ctxT(t), base+"/admin/ws/", client.Header(http.Header{"Authorization": {basic(adminUser, adminPass)}}))
	if err != nil {
		t.Fatalf("the admin's WebSocket refused the right password: %v", err)
	}
	c.Close()
	// Without a trailing slash the page redirects (the admin itself, when
	// a mux hands it such a path).
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/ops?x=1", nil)
	req.SetBasicAuth(adminUser, adminPass)
	a.ServeHTTP(rec, req)
	if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/ops/?x=1" {
		t.Errorf("GET /ops: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
}

func basic(user, pass string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

func TestAdminAuthorizeHook(t *testing.T) {
	s := newStack(t, stackConfig{})
	withAdmin(t, s, observe.Authorize(func(r *http.Request) (string, error) {
		switch r.Header.Get("X-Role") {
		case "ops":
			return "carol", nil
		case "guest":
			return "", observe.ErrForbidden
		case "panic":
			panic("hook bug")
		}
		return "", errors.New("who are you")
	}))
	for role, want := range map[string]int{"ops": 200, "guest": 403, "": 401, "panic": 403} {
		if status, _, _ := do(t, s, http.MethodGet, "/admin/", "", map[string]string{"X-Role": role}); status != want {
			t.Errorf("role %q: got %d, want %d", role, status, want)
		}
	}
}

func TestAdminActionsNeedThePage(t *testing.T) {
	s := newStack(t, stackConfig{})
	withAdmin(t, s, observe.BasicAuth(adminUser, adminPass))
	ok := map[string]string{"auth": adminUser + ":" + adminPass, "X-Courier-Admin": "1", "Content-Type": "application/json"}
	with := func(k, v string) map[string]string {
		h := map[string]string{}
		for a, b := range ok {
			h[a] = b
		}
		if v == "" {
			delete(h, k)
		} else {
			h[k] = v
		}
		return h
	}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		body   string
		want   int
	}{
		{"GET", http.MethodGet, "/admin/api/leave", ok, "", http.StatusMethodNotAllowed},
		{"no header", http.MethodPost, "/admin/api/leave", with("X-Courier-Admin", ""), `{}`, http.StatusForbidden},
		{"other origin", http.MethodPost, "/admin/api/leave", with("Origin", "http://evil.example"), `{}`, http.StatusForbidden},
		{"bad JSON", http.MethodPost, "/admin/api/leave", ok, `{`, http.StatusBadRequest},
		{"unknown field", http.MethodPost, "/admin/api/leave", ok, `{"x":1}`, http.StatusBadRequest},
		{"unknown action", http.MethodPost, "/admin/api/explode", ok, `{}`, http.StatusNotFound},
		{"leave without names", http.MethodPost, "/admin/api/leave", ok, `{}`, http.StatusBadRequest},
		{"leave a room one is not in", http.MethodPost, "/admin/api/leave", ok, `{"room":"r","member":"m"}`, http.StatusNotFound},
		{"watch an unknown session", http.MethodPost, "/admin/api/watch", ok, `{"session":"nope"}`, http.StatusNotFound},
		{"redrive an unknown dead letter", http.MethodPost, "/admin/api/redrive", ok, `{"dead_topic":"$dead.x","seq":1}`, http.StatusNotFound},
		{"redrive a topic that is not a dead letter topic", http.MethodPost, "/admin/api/redrive", ok, `{"dead_topic":"x","seq":1}`, http.StatusNotFound},
		{"wrong password", http.MethodPost, "/admin/api/leave", with("auth", adminUser+":x"), `{}`, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := do(t, s, tc.method, tc.path, tc.body, tc.hdr)
			if status != tc.want {
				t.Errorf("got %d %s, want %d", status, body, tc.want)
			}
		})
	}
	// Same origin is fine.
	if status, _, body := do(t, s, http.MethodPost, "/admin/api/leave", `{}`, with("Origin", s.srv.URL)); status != http.StatusBadRequest {
		t.Errorf("same origin: got %d %s, want 400 (no names)", status, body)
	}
}

// deadLetterJob makes the topic "jobs" whose subscriber fails while fail is
// set, and publishes v to it; it returns the messages the subscriber
// handled successfully once fail is cleared.
func deadLetterJob(t testing.TB, b *bus.Bus, fail *atomic.Bool, v order) <-chan bus.Message[order] {
	t.Helper()
	jobs, err := bus.NewTopic[order](b, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan bus.Message[order], 10)
	if _, err := jobs.Subscribe(func(_ context.Context, m bus.Message[order]) error {
		if fail.Load() {
			return errors.New("payment service said no")
		}
		got <- m
		return nil
	}, bus.MaxDeliver(2), bus.Backoff(func(int) time.Duration { return time.Millisecond })); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Publish(ctxT(t), v, bus.Headers(map[string]string{"trace": "t-1"})); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the dead letter", func() bool { return topicStats(b, "$dead.jobs").Published == 1 })
	return got
}

func TestAdminRedriveLeave(t *testing.T) {
	s := newStack(t, stackConfig{bridgeOpts: []bridge.Option{bridge.ExposeRooms("*", bridge.Join)}})
	withAdmin(t, s, observe.BasicAuth(adminUser, adminPass))
	var fail atomic.Bool
	fail.Store(true)
	got := deadLetterJob(t, s.bus, &fail, order{ID: 42})
	fail.Store(false)

	status, ans := action(t, s, "redrive", map[string]any{"dead_topic": "$dead.jobs", "seq": 1})
	if status != http.StatusOK || ans["topic"] != "jobs" || ans["seq"] != float64(2) {
		t.Fatalf("redrive: %d %v", status, ans)
	}
	select {
	case m := <-got:
		if m.Value.ID != 42 || m.Header(observe.RedrivenHeader) != "$dead.jobs#1" || m.Header("trace") != "t-1" || m.Seq() != 2 {
			t.Errorf("re-driven message: value %+v seq %d headers %v", m.Value, m.Seq(), m.Headers())
		}
	case <-ctxT(t).Done():
		t.Fatal("the re-driven message did not arrive")
	}
	// A second click within the de-duplication window publishes nothing.
	status, ans = action(t, s, "redrive", map[string]any{"dead_topic": "$dead.jobs", "seq": 1})
	if status != http.StatusOK || ans["seq"] != float64(2) {
		t.Errorf("second redrive: %d %v, want the first one's seq 2", status, ans)
	}
	if n := topicStats(s.bus, "jobs").Published; n != 2 {
		t.Errorf("jobs published %d, want 2", n)
	}
	if status, ans := action(t, s, "redrive", map[string]any{"dead_topic": "$dead.jobs", "seq": 9}); status != http.StatusNotFound {
		t.Errorf("redrive of a dead letter that is not there: %d %v", status, ans)
	}

	// Remove a bridge client from a room.
	c, err := client.Dial(ctxT(t), s.wsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Join(ctxT(t), "lobby"); err != nil {
		t.Fatal(err)
	}
	status, ans = action(t, s, "leave", map[string]any{"room": "lobby", "member": c.SessionID()})
	if status != http.StatusOK {
		t.Fatalf("leave: %d %v", status, ans)
	}
	if m := s.bus.RoomMembers("lobby"); len(m) != 0 {
		t.Errorf("lobby still has %v", m)
	}

	// Disconnect a client: it resumes its session.
	sid := c.SessionID()
	status, ans = action(t, s, "disconnect", map[string]any{"session": sid})
	if status != http.StatusOK {
		t.Errorf("disconnect: %d %v", status, ans)
	}
	eventually(t, "the client's resume", func() bool { return s.br.Stats().Resumed == 1 && s.br.Stats().Connections == 1 })
	if got := c.SessionID(); got != sid {
		t.Errorf("after the disconnect the client is in session %s, want %s", got, sid)
	}
	if status, ans := action(t, s, "disconnect", map[string]any{"session": "no-such-session"}); status != http.StatusNotFound {
		t.Errorf("disconnect of an unknown session: %d %v, want 404", status, ans)
	}
}

// adminPage is an admin page in Go: a bridge client of the admin that
// registers for snapshots and keeps the newest.
type adminPage struct {
	c     *client.Client
	mu    sync.Mutex
	snaps []map[string]any
	wake  chan struct{}
}

func openAdminPage(t testing.TB, s *stack) *adminPage {
	t.Helper()
	p := &adminPage{wake: make(chan struct{}, 1)}
	base := strings.TrimSuffix(s.wsURL(), "/bus/")
	c, err := client.Dial(ctxT(t), base+"/admin/ws/", client.Header(http.Header{"Authorization": {basic(adminUser, adminPass)}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p.c = c
	c.Handle("snapshot", func(_ context.Context, data json.RawMessage) (any, error) {
		var snap map[string]any
		if err := json.Unmarshal(data, &snap); err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.snaps = append(p.snaps, snap)
		p.mu.Unlock()
		select {
		case p.wake <- struct{}{}:
		default:
		}
		return true, nil
	})
	status, ans := action(t, s, "watch", map[string]any{"session": c.SessionID()})
	if status != http.StatusOK || ans["time"] == nil {
		t.Fatalf("watch: %d %v", status, ans)
	}
	return p
}

// wait waits up to d for a pushed snapshot that satisfies cond.
func (p *adminPage) wait(t testing.TB, d time.Duration, what string, cond func(snap map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(d)
	for {
		p.mu.Lock()
		for _, s := range p.snaps {
			if cond(s) {
				p.mu.Unlock()
				return s
			}
		}
		p.snaps = p.snaps[:0]
		p.mu.Unlock()
		select {
		case <-p.wake:
		case <-deadline:
			t.Fatalf("no snapshot with %s within %v", what, d)
			return nil
		}
	}
}

func roomHas(snap map[string]any, room, member string) bool {
	rooms, _ := snap["rooms"].([]any)
	for _, r := range rooms {
		r := r.(map[string]any)
		if r["name"] != room {
			continue
		}
		ms, _ := r["members"].([]any)
		for _, m := range ms {
			if m.(map[string]any)["id"] == member {
				return true
			}
		}
	}
	return false
}

// TestAdminPushes checks the page's live feed without a browser: a client
// joining a room shows within a second, and so does a dead letter.
func TestAdminPushes(t *testing.T) {
	s := newStack(t, stackConfig{persist: true, bridgeOpts: []bridge.Option{bridge.ExposeRooms("*", bridge.Join)}})
	withAdmin(t, s, observe.BasicAuth(adminUser, adminPass), observe.WithStore(s.store))
	page := openAdminPage(t, s)

	c, err := client.Dial(ctxT(t), s.wsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	page.wait(t, time.Second, "the client's connection", func(snap map[string]any) bool {
		b, _ := snap["bridge"].(map[string]any)
		return b != nil && b["connections"] == float64(1)
	})
	if err := c.Join(ctxT(t), "lobby"); err != nil {
		t.Fatal(err)
	}
	snap := page.wait(t, time.Second, "the client in lobby", func(snap map[string]any) bool { return roomHas(snap, "lobby", c.SessionID()) })
	sessions, _ := snap["sessions"].([]any)
	if len(sessions) != 1 || sessions[0].(map[string]any)["id"] != c.SessionID() {
		t.Errorf("sessions: %v", sessions)
	}
	if snap["store"] == nil {
		t.Error("no store in the snapshot")
	}
	if m := snap["bus"].(map[string]any)["members"]; m != float64(1) {
		t.Errorf("bus members %v, want 1: the client, not the admin page", m)
	}

	var fail atomic.Bool
	fail.Store(true)
	deadLetterJob(t, s.bus, &fail, order{ID: 7})
	snap = page.wait(t, time.Second, "the dead letter", func(snap map[string]any) bool {
		dead, _ := snap["dead"].([]any)
		return len(dead) == 1
	})
	d := snap["dead"].([]any)[0].(map[string]any)
	if d["key"] != "$dead.jobs#1" || d["topic"] != "jobs" || d["error"] != "payment service said no" ||
		d["data"] != `{"id":7}` || d["attempts"] != float64(2) {
		t.Errorf("dead letter: %v", d)
	}
	// Rates come from counts a second apart.
	snap = page.wait(t, 3*time.Second, "a rate for jobs", func(snap map[string]any) bool {
		for _, tp := range snap["topics"].([]any) {
			tp := tp.(map[string]any)
			if tp["name"] == "jobs" && tp["published"] == float64(1) {
				return true
			}
		}
		return false
	})
	_ = snap
}

// TestAdminClose checks that a closed admin refuses and that Close may be
// called twice.
func TestAdminClose(t *testing.T) {
	s := newStack(t, stackConfig{})
	a := withAdmin(t, s, observe.BasicAuth(adminUser, adminPass))
	openAdminPage(t, s)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := do(t, s, http.MethodGet, "/admin/ws/", "", map[string]string{
		"auth": adminUser + ":" + adminPass, "Connection": "Upgrade", "Upgrade": "websocket",
		"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
	}); status != http.StatusServiceUnavailable {
		t.Errorf("WebSocket after Close: %d, want 503", status)
	}
	if _, err := observe.NewAdmin(s.bus, observe.Interval(time.Millisecond)); !errors.Is(err, observe.ErrInvalidOption) {
		t.Errorf("Interval(1ms): %v, want ErrInvalidOption", err)
	}
	if _, err := observe.NewAdmin(nil); !errors.Is(err, observe.ErrInvalidOption) {
		t.Errorf("nil bus: %v", err)
	}
}
