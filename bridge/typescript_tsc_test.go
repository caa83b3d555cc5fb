package bridge_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/internal/tsc"
)

// The types of the sample front-ends in testdata/tsc.
type (
	ChatMessage struct {
		Text   string     `json:"text"`
		Edited *time.Time `json:"edited,omitempty"`
	}
	News struct {
		Title string   `json:"title"`
		Tags  []string `json:"tags,omitempty"`
	}
	RoomInfo struct {
		Name    string `json:"name"`
		Members int    `json:"members"`
	}
)

// TestTypeScriptCompiles type-checks the front-ends of testdata/tsc with
// tsc against the declarations a bridge serves: good.ts must compile, and
// each other file must fail with the error its first line names
// ("// want: TS2353 ...").
func TestTypeScriptCompiles(t *testing.T) {
	e := newEnv(t, nil,
		bridge.ExposeTyped[ChatMessage]("chat.*", bridge.Subscribe, bridge.Publish),
		bridge.Expose("news.>", bridge.Subscribe),
		bridge.Expose("rooms.*", bridge.Request),
		bridge.Expose("news.count", bridge.Request),
	)
	for _, err := range []error{
		bind[ChatMessage](e.bus, "chat.lobby"),
		bind[News](e.bus, "news.daily"),
		bind[News](e.bus, "secret.plans"),
		endpoint[struct{}, []RoomInfo](e.bus, "rooms.list"),
		endpoint[string, int](e.bus, "news.count"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	_, topics := httpGet(t, e.srv.URL+"/bus/topics.d.ts")
	_, client := httpGet(t, e.srv.URL+"/bus/client.d.ts")
	cases, err := filepath.Glob("testdata/tsc/*.[jt]s")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, path := range cases {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(src), "\n")
			want, ok := strings.CutPrefix(first, "// want: ")
			if !ok {
				t.Fatalf("%s: the first line must be // want: ok or // want: TSnnnn message", path)
			}
			dir := t.TempDir()
			for name, data := range map[string]string{"topics.d.ts": topics, "client.d.ts": client, filepath.Base(path): string(src)} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			passed, out := tsc.Check(t, dir, filepath.Base(path))
			switch {
			case want == "ok" && !passed:
				t.Errorf("tsc failed, want it to pass:\n%s", out)
			case want != "ok" && passed:
				t.Errorf("tsc passed, want %s", want)
			default:
				code, msg, _ := strings.Cut(want, " ")
				if want != "ok" && (!strings.Contains(out, "error "+code+": ") || !strings.Contains(out, msg)) {
					t.Errorf("tsc said:\n%s\nwant: error %s: %s", out, code, msg)
				}
			}
		})
	}
}
