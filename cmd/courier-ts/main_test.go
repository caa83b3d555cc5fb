package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Note is the payload of the test's topics.
type Note struct {
	Text string `json:"text"`
	// Pinned is documented.
	Pinned bool `json:"pinned,omitempty"`
}

// serve starts a bridge with typed topics on 127.0.0.1 and returns its
// mount URL.
func serve(t *testing.T) (*bridge.Bridge, string) {
	t.Helper()
	b, err := bus.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if _, err := bus.NewTopic[Note](b, "notes.today"); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.NewEndpoint[string, []Note](b, "notes.find"); err != nil {
		t.Fatal(err)
	}
	br, err := bridge.New(b, bridge.ExposeTyped[Note]("notes.*", bridge.Subscribe, bridge.Publish),
		bridge.Expose("notes.find", bridge.Request))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/bus/", br)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Start()
	t.Cleanup(func() { br.Close(); srv.Close() })
	return br, srv.URL + "/bus/"
}

func get(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
	}
	return body
}

// The files the command writes are what the bridge serves, and
// topics.d.ts is what Bridge.TypeScript returns.
func TestWritesWhatTheBridgeServes(t *testing.T) {
	br, mount := serve(t)
	dir := filepath.Join(t.TempDir(), "web", "bus")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"-url", mount, "-dir", dir}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want, err := br.TypeScript()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{
		"topics.d.ts": want,
		"client.d.ts": get(t, mount+"client.d.ts"),
	} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if served := get(t, mount+name); !bytes.Equal(got, served) || !bytes.Equal(got, want) {
			t.Errorf("%s: wrote\n%s\nserved\n%s\nwant\n%s", name, got, served, want)
		}
	}
	if !strings.Contains(string(want), "'notes.today': Note;") {
		t.Errorf("topics.d.ts does not declare notes.today:\n%s", want)
	}

	// -check passes on what was written and fails, naming the file, on
	// a file that differs.
	out.Reset()
	if code := run(context.Background(), []string{"-url", mount, "-dir", dir, "-check"}, &out, &errOut); code != 0 {
		t.Fatalf("-check on fresh files: exit %d: %s", code, out.String())
	}
	if err := os.WriteFile(filepath.Join(dir, "topics.d.ts"), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run(context.Background(), []string{"-url", mount, "-dir", dir, "-check"}, &out, &errOut); code != 1 ||
		!strings.Contains(out.String(), "topics.d.ts differs") || strings.Contains(out.String(), "client.d.ts") {
		t.Fatalf("-check on a stale file: exit %d, %q", code, out.String())
	}
}

func TestErrors(t *testing.T) {
	_, mount := serve(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no url", nil, 2, "usage"},
		{"not http", []string{"-url", "ws://127.0.0.1/bus/"}, 2, "not an http(s) URL"},
		{"not a bridge", []string{"-url", strings.TrimSuffix(mount, "bus/") + "nothing/", "-dir", t.TempDir()}, 1, "404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errOut)
			if code != tc.code || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("got exit %d, %q; want exit %d with %q", code, errOut.String(), tc.code, tc.want)
			}
		})
	}
}
