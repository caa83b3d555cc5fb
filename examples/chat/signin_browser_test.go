package main

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserSignIn: a name is its first user's. Another browser signing
// in as alice with another password stays on the sign-in form with one
// sentence saying why, and so does one claiming "admin"; alice herself, in
// a second browser, gets in.
func TestBrowserSignIn(t *testing.T) {
	browser := startBrowser(t)
	ts := startServer(t, config{memory: true})
	alice := openChat(t, browser, ts, "alice", "lobby")

	mallory := newTab(t, browser, ts.base+"/", "mallory")
	for _, tc := range []struct{ name, password, want string }{
		{"alice", "mallory's guess", "Wrong password for this name."},
		{"Alice", "mallory's guess", "Wrong password for this name."},
		{"admin", "mallory's secret", "This name is reserved."},
	} {
		mallory.Do(
			chromedp.WaitVisible(chromedp.ID("name")),
			chromedp.SetValue(chromedp.ID("name"), tc.name),
			chromedp.SetValue(chromedp.ID("password"), tc.password),
			chromedp.Click(chromedp.ID("enter")),
		)
		mallory.waitJS(`!document.getElementById('login-error').hidden && !document.getElementById('enter').disabled`,
			"the sign-in to be refused")
		if got := eval[string](mallory, `document.getElementById('login-error').textContent`); got != tc.want {
			t.Errorf("signing in as %q with %q shows %q, want %q", tc.name, tc.password, got, tc.want)
		}
		if eval[bool](mallory, `!document.getElementById('chat').hidden || chat.client !== null`) {
			t.Fatalf("signing in as %q with %q opened the chat", tc.name, tc.password)
		}
		eval[bool](mallory, `(document.getElementById('login-error').hidden = true)`)
	}

	// alice's own second browser: the right password gets her in.
	again := openChat(t, browser, ts, "alice", "lobby")
	alice.waitJS(`document.querySelectorAll('#members li').length === 2`, "alice's second session in the member list")
	if got := eval[string](again, `document.getElementById('me').textContent`); got != "alice" {
		t.Errorf("the second browser is signed in as %q, want alice", got)
	}
	alice.checkConsole()
	again.checkConsole()
	// Chromium logs the refused sign-ins' status (401, 403) as errors.
	mallory.checkConsole("401 (Unauthorized)", "403 (Forbidden)")
}
