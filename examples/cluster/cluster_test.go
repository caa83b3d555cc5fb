package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/examples/internal/chatapp"
)

// startCluster starts the NATS servers and three chat nodes on 127.0.0.1,
// stopped when the test ends.
func startCluster(t *testing.T) *chatCluster {
	t.Helper()
	// A low PBKDF2 cost: the default takes seconds a hash under -race.
	c, err := start(config{addrs: []string{"127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"}, dataDir: t.TempDir(),
		accounts: chatapp.NewAccounts(chatapp.HashCost(1000))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
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

// TestRun: run prints the three nodes' URLs, each page lists its own
// bridge and then the next nodes', and SIGINT's context ending stops it.
func TestRun(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, config{addrs: []string{"127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"}, dataDir: t.TempDir()}, pw)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var urls []string
	for len(urls) < 3 && sc.Scan() {
		if _, u, ok := strings.Cut(sc.Text(), ": open "); ok {
			urls = append(urls, u)
		}
	}
	go io.Copy(io.Discard, pr)
	if len(urls) != 3 {
		cancel()
		<-done
		t.Fatalf("run printed %d URLs, want 3: %v", len(urls), urls)
	}
	for i, u := range urls {
		if !strings.HasPrefix(u, "http://127.0.0.1:") {
			t.Errorf("node %d: URL %q, want http://127.0.0.1:port/", i, u)
		}
		resp, body := get(t, u)
		want := `["./bus/","` + urls[(i+1)%3] + `bus/","` + urls[(i+2)%3] + `bus/"]`
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, want a page listing %s", u, resp.StatusCode, want)
		}
		next := strings.TrimSuffix(strings.TrimPrefix(urls[(i+1)%3], "http://"), "/")
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "ws://"+next+" ") {
			t.Errorf("GET %s: Content-Security-Policy %q does not let the page connect to %s", u, csp, next)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return within 30s of its context ending")
	}
}

// user is a Go client of the chat on one node.
type user struct {
	c    *client.Client
	mu   sync.Mutex
	got  []string // "from: text"
	wake chan struct{}
}

func dial(t *testing.T, ctx context.Context, page, name string) *user {
	t.Helper()
	ws := "ws://" + strings.TrimPrefix(page, "http://") + "bus/"
	origin := strings.TrimSuffix(page, "/")
	c, err := client.Dial(ctx, ws, client.Header(http.Header{"Origin": {origin}, "Cookie": {signIn(t, ctx, page, name)}}))
	if err != nil {
		t.Fatalf("dial %s as %s: %v", ws, name, err)
	}
	t.Cleanup(func() { c.Close() })
	u := &user{c: c, wake: make(chan struct{}, 1)}
	if err := c.Join(ctx, "lobby"); err != nil {
		t.Fatalf("%s joins the lobby: %v", name, err)
	}
	_, err = c.Subscribe(ctx, chatapp.ChatPrefix+"lobby", func(_ context.Context, m *client.Message) error {
		var data struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(m.Data, &data); err != nil {
			return err
		}
		u.mu.Lock()
		u.got = append(u.got, m.Headers[client.HeaderUser]+": "+data.Text)
		u.mu.Unlock()
		select {
		case u.wake <- struct{}{}:
		default:
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s subscribes to the lobby: %v", name, err)
	}
	return u
}

// signIn signs in as name on the node's page, as the page does, and
// returns the session cookie ("name=value").
func signIn(t *testing.T, ctx context.Context, page, name string) string {
	t.Helper()
	body := `{"name":"` + name + `","password":"password of ` + name + `"}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, page+"signin", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == chatapp.CookieName && resp.StatusCode == http.StatusOK {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatalf("sign in as %s on %s: %s", name, page, resp.Status)
	return ""
}

func (u *user) say(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	if _, err := u.c.Publish(ctx, chatapp.ChatPrefix+"lobby", map[string]string{"text": text}, client.Ack()); err != nil {
		t.Fatalf("say %q: %v", text, err)
	}
}

// waitFor waits until the user got n messages and returns them.
func (u *user) waitFor(t *testing.T, ctx context.Context, n int) []string {
	t.Helper()
	for {
		u.mu.Lock()
		got := slices.Clone(u.got)
		u.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-u.wake:
		case <-ctx.Done():
			t.Fatalf("got %v, want %d messages", got, n)
		}
	}
}

// TestChatAcrossNodes: users on two nodes chat in one room and see each
// other in its members; the third node lists the room.
func TestChatAcrossNodes(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := dial(t, ctx, c.nodes[0].url, "alice")
	bob := dial(t, ctx, c.nodes[1].url, "bob")
	alice.say(t, ctx, "hi from A")
	bob.waitFor(t, ctx, 1)
	bob.say(t, ctx, "hi from B")
	want := "alice: hi from A|bob: hi from B"
	for name, u := range map[string]*user{"alice": alice, "bob": bob} {
		if got := strings.Join(u.waitFor(t, ctx, 2), "|"); got != want {
			t.Errorf("%s got %s, want %s", name, got, want)
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
	slices.Sort(users)
	if strings.Join(users, ",") != "alice,bob" {
		t.Errorf("the lobby's members seen from node A: %v, want alice and bob", users)
	}
}

// post posts the nodes' form op ("stop", "start") for node on page, from
// origin, and returns the status and where it redirects.
func post(t *testing.T, page, origin, node, op string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, page+"nodes/"+node+"/"+op, nil)
	req.Header.Set("Origin", origin)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// TestNodeControls: the nodes' page stops and starts nodes; a node that
// stops itself sends the browser to another node's page; the last running
// node stays; forms from other sites are refused.
func TestNodeControls(t *testing.T) {
	c := startCluster(t)
	a, b, cc := c.nodes[0], c.nodes[1], c.nodes[2]
	origin := strings.TrimSuffix(a.url, "/")
	if resp, body := get(t, a.url+"nodes/"); resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="stop-B"`) {
		t.Fatalf("GET /nodes/: %d, want a page with node B's stop button", resp.StatusCode)
	}
	if code, _ := post(t, a.url, "http://evil.example", "B", "stop"); code != http.StatusForbidden || !b.running() {
		t.Errorf("a stop from another site: %d, running %v; want 403 and B running", code, b.running())
	}
	if code, _ := post(t, a.url, origin, "B", "reboot"); code != http.StatusNotFound {
		t.Errorf("op reboot: %d, want 404", code)
	}
	if code, to := post(t, a.url, origin, "B", "stop"); code != http.StatusSeeOther || to != a.url+"nodes/" || b.running() {
		t.Errorf("stop B: %d to %q, running %v; want 303 to %snodes/ and B stopped", code, to, b.running(), a.url)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.url, nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("node B's page answers %d after B stopped", resp.StatusCode)
	}
	// A stops itself: the browser goes on to C's page.
	if code, to := post(t, a.url, origin, "A", "stop"); code != http.StatusSeeOther || to != cc.url+"nodes/" {
		t.Errorf("A stops itself: %d to %q, want 303 to %snodes/", code, to, cc.url)
	}
	originC := strings.TrimSuffix(cc.url, "/")
	if code, _ := post(t, cc.url, originC, "C", "stop"); code != http.StatusConflict || !cc.running() {
		t.Errorf("stop the last running node: %d, running %v; want 409 and C running", code, cc.running())
	}
	for _, n := range []*chatNode{a, b} {
		if code, _ := post(t, cc.url, originC, n.name, "start"); code != http.StatusSeeOther || !n.running() {
			t.Fatalf("start %s: %d, running %v", n.name, code, n.running())
		}
		if resp, body := get(t, n.url); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Courier chat") {
			t.Errorf("node %s's page after a start: %d", n.name, resp.StatusCode)
		}
	}
	// Users on the restarted nodes chat.
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := dial(t, ctx, a.url, "alice")
	bob := dial(t, ctx, b.url, "bob")
	alice.say(t, ctx, "after the restarts")
	if got := bob.waitFor(t, ctx, 1); got[0] != "alice: after the restarts" {
		t.Errorf("bob got %v", got)
	}
}
