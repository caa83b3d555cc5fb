package bridge_test

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bus"
)

type chatMessage struct {
	Text string `json:"text"`
}

type news struct {
	Title string   `json:"title"`
	Tags  []string `json:"tags,omitempty"`
}

// rawCodec is a codec that does not write JSON.
type rawCodec struct{}

func (rawCodec) Encode(v any) ([]byte, error)      { return v.([]byte), nil }
func (rawCodec) Decode(data []byte, ptr any) error { *ptr.(*[]byte) = data; return nil }

func TestTypeScript(t *testing.T) {
	e := newEnv(t, nil, bridge.Namespace("app"),
		bridge.ExposeTyped[chatMessage]("chat.*", bridge.Subscribe, bridge.Publish),
		bridge.Expose("news.>", bridge.Subscribe),
		bridge.Expose("rooms.*", bridge.Request),
		bridge.Expose("blobs.b1", bridge.Subscribe),
	)
	for _, err := range []error{
		bind[chatMessage](e.bus, "app.chat.lobby"),
		bind[news](e.bus, "app.news.daily"),
		bind[news](e.bus, "app.secret.plans"), // not exposed
		bind[news](e.bus, "other.news.daily"), // outside the namespace
		endpoint[struct{}, []string](e.bus, "app.rooms.list"),
		endpoint[string, int](e.bus, "app.news.count"), // exposed for subscribe only
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bus.NewTopic[[]byte](e.bus, "app.blobs.b1", bus.WithCodec(rawCodec{})); err != nil {
		t.Fatal(err)
	}
	got, err := e.br.TypeScript()
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(got), "\n\n")
	want := `/** What the bridge exposes: the payload of each topic or pattern, by action. */
export interface Topics {
  subscribe: {
    'blobs.b1': unknown;
    'chat.lobby': chatMessage;
    'news.daily': news;
    [topic: ` + "`chat.${string}`" + `]: chatMessage;
    [topic: ` + "`news.${string}`" + `]: unknown;
  };
  publish: {
    'chat.lobby': chatMessage;
    [topic: ` + "`chat.${string}`" + `]: chatMessage;
  };
  request: {
    'rooms.list': { request: { [key: string]: never }; reply: string[] | null };
    [topic: ` + "`rooms.${string}`" + `]: { request: unknown; reply: unknown };
  };
}

export interface chatMessage {
  text: string;
}

export interface news {
  title: string;
  tags?: string[];
}
`
	if body != want {
		t.Errorf("got:\n%s\nwant:\n%s", body, want)
	}

	// Served: the same text, and the client's declarations beside it.
	resp, served := httpGet(t, e.srv.URL+"/bus/topics.d.ts")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/typescript; charset=utf-8" {
		t.Fatalf("topics.d.ts: HTTP %d, Content-Type %q", resp.StatusCode, ct)
	}
	if served != string(got) {
		t.Errorf("served topics.d.ts:\n%s\nTypeScript():\n%s", served, got)
	}
	client, err := os.ReadFile("js/courier.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	if resp, served := httpGet(t, e.srv.URL+"/bus/client.d.ts"); resp.StatusCode != 200 || served != string(client) {
		t.Errorf("client.d.ts: HTTP %d, %d bytes, want js/courier.d.ts (%d bytes)", resp.StatusCode, len(served), len(client))
	}
}

func TestTypeScriptError(t *testing.T) {
	e := newEnv(t, nil, bridge.ExposeTyped[chan int]("pipes.*", bridge.Subscribe))
	if _, err := e.br.TypeScript(); err == nil || !strings.Contains(err.Error(), "unsupported type chan int") {
		t.Fatalf("got %v, want an unsupported type error", err)
	}
	if resp, body := httpGet(t, e.srv.URL+"/bus/topics.d.ts"); resp.StatusCode != http.StatusInternalServerError ||
		!strings.Contains(body, "unsupported type chan int") {
		t.Fatalf("got HTTP %d %q, want 500 naming the type", resp.StatusCode, body)
	}
}

func bind[T any](b *bus.Bus, name string) error {
	_, err := bus.NewTopic[T](b, name)
	return err
}

func endpoint[Req, Resp any](b *bus.Bus, name string) error {
	_, err := bus.NewEndpoint[Req, Resp](b, name)
	return err
}

func httpGet(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
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
