package bridge

import (
	"crypto/rand"
	"strings"
	"testing"
)

func tokenBridge(t testing.TB) *Bridge {
	b := &Bridge{}
	if _, err := rand.Read(b.key[:]); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestResumeToken(t *testing.T) {
	b := tokenBridge(t)
	sid := newID()
	tok := b.token(sid, "alice")
	if got, ok := b.checkToken(tok, "alice"); !ok || got != sid {
		t.Fatalf("checkToken(own token) = %q, %v; want %q, true", got, ok, sid)
	}
	for _, tc := range []struct {
		name, tok, user string
	}{
		{"another identity", tok, "mallory"},
		{"anonymous", tok, ""},
		{"another bridge's key", tokenBridge(t).token(sid, "alice"), "alice"},
		{"another session", newID() + tok[22:], "alice"},
		{"signature cut", tok[:len(tok)-2], "alice"},
		{"no signature", sid + ".", "alice"},
		{"no dot", sid, "alice"},
		{"empty", "", "alice"},
		{"bad base64", sid + ".!!!!", "alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := b.checkToken(tc.tok, tc.user); ok {
				t.Fatalf("checkToken(%q, %q) accepted a token it did not make for that identity", tc.tok, tc.user)
			}
		})
	}
}

// FuzzResumeToken: no input panics checkToken, and the only tokens it
// accepts are the ones the bridge made for that identity.
func FuzzResumeToken(f *testing.F) {
	b := tokenBridge(f)
	sid := newID()
	f.Add(b.token(sid, "alice"), "alice")
	f.Add(b.token(sid, "alice"), "bob")
	f.Add(sid+".AAAA", "alice")
	f.Add("x.y", "")
	f.Add(strings.Repeat("A", 22)+"."+strings.Repeat("A", 24), "alice")
	f.Fuzz(func(t *testing.T, tok, user string) {
		got, ok := b.checkToken(tok, user)
		if ok && tok != b.token(got, user) {
			t.Fatalf("checkToken accepted %q for %q, which the bridge did not make", tok, user)
		}
	})
}
