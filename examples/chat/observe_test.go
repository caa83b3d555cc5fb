package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMetrics checks that /metrics shows the chat: a user's connection,
// the room's messages and the store's commits.
func TestMetrics(t *testing.T) {
	ts := startServer(t, config{dataDir: t.TempDir()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice := dial(t, ts, "alice")
	alice.enter(ctx, "lobby")
	alice.say(ctx, "lobby", "hi")
	alice.say(ctx, "lobby", "anyone?")
	alice.waitFor(2, 5*time.Second)

	resp, body := get(t, ts.base+"/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	for _, want := range []string{
		"courier_bridge_connections 1\n",
		"courier_bridge_sessions 1\n",
		`courier_bus_published_total{topic="chat.lobby"} 2` + "\n",
		`courier_bus_published_total{topic="$rooms"} 1` + "\n",
		"courier_persist_commit_batch_ops_count ",
		"courier_persist_commit_duration_seconds_bucket{le=",
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %q", strings.TrimSpace(want))
		}
	}
}

// TestAdminPage checks that the admin page is closed without a password
// and asks for it with one.
func TestAdminPage(t *testing.T) {
	closed := startServer(t, config{memory: true})
	if resp, body := get(t, closed.base+"/admin/"); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "-admin-password") {
		t.Errorf("admin page without a password: %d %q", resp.StatusCode, body)
	}

	ts := startServer(t, config{memory: true, adminPassword: "s3cret"})
	for _, tc := range []struct {
		user, password string
		want           int
	}{
		{"", "", http.StatusUnauthorized},
		{"admin", "wrong", http.StatusUnauthorized},
		{"admin", "s3cret", http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, ts.base+"/admin/", nil)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s:%s: got %d, want %d", tc.user, tc.password, resp.StatusCode, tc.want)
		}
		if resp.StatusCode == http.StatusOK && !strings.Contains(string(body), "Courier admin") {
			t.Errorf("the admin page: %.80q", body)
		}
	}
}
