package tsgen

import (
	"image"
	"reflect"
	"slices"
	"strings"
	"testing"
)

type ChatMessage struct {
	Text string `json:"text"`
}

type Alert struct {
	Level int `json:"level"`
}

func TestGenerate(t *testing.T) {
	got, err := Generate([]Entry{
		{Name: "chat.*", Subscribe: true, Publish: true, Type: reflect.TypeFor[ChatMessage]()},
		{Name: "chat.>", Subscribe: true},
		{Name: "chat.alerts", Subscribe: true, Type: reflect.TypeFor[Alert]()},
		{Name: "news.*.today", Subscribe: true, Type: reflect.TypeFor[string]()},
		{Name: "rooms.list", Request: true, Type: reflect.TypeFor[struct{}](), Reply: reflect.TypeFor[[]string]()},
		{Name: "rooms.*", Request: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := header + `
/** What the bridge exposes: the payload of each topic or pattern, by action. */
export interface Topics {
  subscribe: {
    'chat.alerts': Alert;
    [topic: ` + "`chat.${string}`" + `]: unknown;
    [topic: ` + "`news.${string}.today`" + `]: string;
  };
  publish: {
    [topic: ` + "`chat.${string}`" + `]: ChatMessage;
  };
  request: {
    'rooms.list': { request: { [key: string]: never }; reply: string[] | null };
    [topic: ` + "`rooms.${string}`" + `]: { request: unknown; reply: unknown };
  };
}

export interface Alert {
  level: number;
}

export interface ChatMessage {
  text: string;
}
`
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestGenerateUnion(t *testing.T) {
	// A pattern's index signature admits the exact names it matches.
	got, err := Generate([]Entry{
		{Name: "chat.*", Publish: true, Type: reflect.TypeFor[ChatMessage]()},
		{Name: "chat.alerts", Publish: true, Type: reflect.TypeFor[Alert]()},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "    'chat.alerts': Alert;\n    [topic: `chat.${string}`]: (ChatMessage) | (Alert);\n"
	if !strings.Contains(string(got), want) {
		t.Errorf("got:\n%s\nwant it to hold:\n%s", got, want)
	}
}

func TestGenerateOrder(t *testing.T) {
	// The same entries in another order give the same text, names of
	// colliding types included.
	entries := []Entry{
		{Name: "a.mine", Publish: true, Type: reflect.TypeFor[Point]()},
		{Name: "a.theirs", Subscribe: true, Type: reflect.TypeFor[image.Point]()},
	}
	want, err := Generate(entries)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(entries)
	got, err := Generate(entries)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("reversed entries:\n%s\nwant:\n%s", got, want)
	}
}
