package main

import (
	"strings"
	"testing"
)

// awayOnPage lists the members a page shows as away.
const awayOnPage = `[...document.querySelectorAll('#members li.away')].map(e => e.textContent).join()`

// staleOnPage tells whether a page shows its member list as stale: its own
// connection is down, so it cannot know who is here.
const staleOnPage = `document.getElementById('members').classList.contains('stale')`

// TestBrowserPresenceAway: a member whose socket drops is shown away on the
// others' pages at once, still in the list, and no longer away when it
// resumes; meanwhile its own page shows its member list as stale, not
// everyone present.
func TestBrowserPresenceAway(t *testing.T) {
	browser := startBrowser(t)
	ts := startServer(t, config{memory: true})
	alice := openChat(t, browser, ts, "alice", "lobby")
	bob := openChat(t, browser, ts, "bob", "lobby")
	bob.waitJS(`document.querySelectorAll('#members li').length === 2`, "alice in bob's member list")
	for _, p := range []*chatPage{alice, bob} {
		if got := eval[string](p, awayOnPage); got != "" {
			t.Errorf("%s's page shows away: %q, want nobody", p.Name, got)
		}
		if eval[bool](p, staleOnPage) {
			t.Errorf("%s's page is online and shows its member list stale", p.Name)
		}
	}

	eval[bool](alice, `(chat.client.disconnect(), true)`) // the socket drops; the session waits for a resume
	bob.waitJS(awayOnPage+` === 'alice'`, "alice away on bob's page")
	if got := strings.Join(bob.members(), ","); got != "alice,bob (you)" {
		t.Errorf("bob's member list while alice is away: %q", got)
	}
	alice.waitJS(staleOnPage+` && document.getElementById('state').dataset.state !== 'online'`,
		"alice's page showing itself offline")

	eval[bool](alice, `(chat.client.reconnect(), true)`)
	bob.waitJS(awayOnPage+` === ''`, "alice back on bob's page")
	alice.waitJS(`chat.client.state === 'online' && !`+staleOnPage, "alice's page online again")
	if got := strings.Join(alice.members(), ","); got != "alice (you),bob" {
		t.Errorf("alice's member list after she resumed: %q", got)
	}
	alice.checkConsole()
	bob.checkConsole()
}
