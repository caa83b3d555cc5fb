package bridge

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/courierbus/courier/bus"
)

// newID returns a random 128-bit id in base64url: 22 characters, one valid
// topic token (so it can be a bus member id).
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// token returns the resume token of session sid for identity user: the id
// and an HMAC of both under the bridge's random key. Without the key a
// token cannot be made, and it is worth nothing to another identity.
func (b *Bridge) token(sid, user string) string {
	return sid + "." + base64.RawURLEncoding.EncodeToString(b.mac(sid, user))
}

func (b *Bridge) mac(sid, user string) []byte {
	h := hmac.New(sha256.New, b.key[:])
	h.Write([]byte(sid))
	h.Write([]byte{0})
	h.Write([]byte(user))
	return h.Sum(nil)[:18]
}

// checkToken returns the session id of a valid token for user.
func (b *Bridge) checkToken(tok, user string) (string, bool) {
	sid, sig, ok := strings.Cut(tok, ".")
	if !ok || len(sid) != 22 {
		return "", false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return "", false
	}
	return sid, hmac.Equal(got, b.mac(sid, user))
}

func errorsIsClosed(err error) bool { return errors.Is(err, bus.ErrClosed) }
