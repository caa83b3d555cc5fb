package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/courierbus/courier/internal/tsc"
)

// pageDir is the page's tree: index.html, chat.js, and bus/ with the
// bridge's declarations.
const pageDir = "../internal/chatapp"

// The declarations in the page's tree are the ones the chat's bridge
// serves, so the page is checked against the server's real types.
func TestPageDeclarationsAreServed(t *testing.T) {
	ts := startServer(t, config{memory: true})
	for _, name := range []string{"client.d.ts", "topics.d.ts"} {
		resp, served := get(t, ts.base+"/bus/"+name)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /bus/%s: status %d", name, resp.StatusCode)
		}
		have, err := os.ReadFile(filepath.Join(pageDir, "bus", name))
		if err != nil {
			t.Fatal(err)
		}
		if string(have) != served {
			t.Errorf("%s/bus/%s is not what the bridge serves; write it again with\n"+
				"\tgo run ./examples/chat -memory &\n"+
				"\tgo run ./cmd/courier-ts -url http://127.0.0.1:8080/bus/ -dir examples/internal/chatapp/bus",
				pageDir, name)
		}
	}
}

// The page's script type-checks against them (tsc, // @ts-check).
func TestPageTypeChecks(t *testing.T) {
	if ok, out := tsc.Check(t, pageDir, "chat.js"); !ok {
		t.Errorf("tsc chat.js:\n%s", out)
	}
}
