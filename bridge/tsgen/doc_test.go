package tsgen_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/internal/tsc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The types of docs/typescript.md's round trip.
type (
	ChatMessage struct {
		Text string    `json:"text"`
		Sent time.Time `json:"sent"`
		Tags []string  `json:"tags,omitempty"`
	}
	ListQuery struct{}
	RoomInfo  struct {
		Name string `json:"name"`
	}
)

// codeBlocks returns the fenced blocks of lang in a Markdown file.
func codeBlocks(t *testing.T, path, lang string) []string {
	t.Helper()
	md, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)```"+lang+"\n(.*?)```").FindAllStringSubmatch(string(md), -1) {
		out = append(out, m[1])
	}
	return out
}

// docs/typescript.md's round trip holds: the declarations it shows are
// the bridge's (abridged: its lines are the bridge's, in order), its page
// compiles, and each line it marks with an error fails with that error.
func TestDocRoundTrip(t *testing.T) {
	b, err := bus.New()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := bus.NewTopic[ChatMessage](b, "chat.lobby"); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.NewEndpoint[ListQuery, []RoomInfo](b, "rooms.list"); err != nil {
		t.Fatal(err)
	}
	br, err := bridge.New(b,
		bridge.ExposeTyped[ChatMessage]("chat.*", bridge.Subscribe, bridge.Publish),
		bridge.Expose("rooms.list", bridge.Request),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	topics, err := br.TypeScript()
	if err != nil {
		t.Fatal(err)
	}
	blocks := codeBlocks(t, "../../docs/typescript.md", "ts")
	if len(blocks) < 2 {
		t.Fatalf("docs/typescript.md has %d ts blocks, want the declarations and the page", len(blocks))
	}
	// The declarations, abridged: comments aside (the bridge has no
	// source here), every line is the bridge's, in order.
	rest := string(topics)
	for _, line := range strings.Split(strings.TrimSpace(blocks[0]), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "/**") {
			continue
		}
		i := strings.Index(rest, line+"\n")
		if i < 0 {
			t.Fatalf("docs/typescript.md shows %q, which the bridge does not declare there:\n%s", line, topics)
		}
		rest = rest[i+len(line):]
	}

	dir := t.TempDir()
	client, err := os.ReadFile("../js/courier.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "bus"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("bus/client.d.ts", string(client))
	write("bus/topics.d.ts", string(topics))
	// The page without its error lines compiles; each error line alone
	// fails as it says.
	errLine := regexp.MustCompile(`// error (TS\d+): (.*)$`)
	var good []string
	type bad struct{ line, code, msg string }
	var bads []bad
	for _, line := range strings.Split(blocks[1], "\n") {
		if m := errLine.FindStringSubmatch(line); m != nil {
			bads = append(bads, bad{line, m[1], m[2]})
			continue
		}
		good = append(good, line)
	}
	write("page.ts", strings.Join(good, "\n")+"\nexport {};\n")
	if ok, out := tsc.Check(t, dir, "page.ts"); !ok {
		t.Fatalf("the page of docs/typescript.md does not compile:\n%s", out)
	}
	for i, bd := range bads {
		name := "bad" + string(rune('a'+i)) + ".ts"
		write(name, strings.Join(good, "\n")+"\n"+bd.line+"\nexport {};\n")
		ok, out := tsc.Check(t, dir, name)
		if ok || !strings.Contains(out, "error "+bd.code+": ") {
			t.Errorf("%s: tsc said %q, want error %s", bd.line, out, bd.code)
		}
		for _, quoted := range regexp.MustCompile(`'[^']*'`).FindAllString(bd.msg, -1) {
			if !strings.Contains(out, quoted) {
				t.Errorf("%s: tsc said %q, which does not name %s", bd.line, out, quoted)
			}
		}
	}
}
