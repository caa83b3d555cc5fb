package chatapp

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/courierbus/courier/bridge"
)

// Sign-in: a user signs in on the page with a name and a password
// (POST /signin). The first sign-in with a name makes its account and sets
// its password; every later one must give that password. The server
// answers with a session cookie it signs (HttpOnly, SameSite=Strict), and
// the bridge's Authenticate hook reads that cookie from the WebSocket's
// upgrade request: the name a page shows as its sender is the one the
// cookie proves, never one the page writes. The bridge binds resume tokens
// to that identity, so a stolen resume token is worth nothing without the
// cookie.

// Errors of [Accounts.SignIn].
var (
	// ErrWrongPassword: the name has an account with another password.
	ErrWrongPassword = errors.New("chat: wrong password for this name")
	// ErrReservedName: the name is the operator's ("admin", in any case).
	ErrReservedName = errors.New("chat: this name is reserved")
	// ErrTooManyAccounts: the server holds MaxAccounts accounts.
	ErrTooManyAccounts = errors.New("chat: too many accounts")
)

// Accounts are the chat's users: a name and a salted PBKDF2-SHA256 hash of
// its password each, in memory, for as long as the process runs (a real
// server keeps them in its database). Names that differ only in case are
// one account. The nodes of a cluster share one [Accounts]
// ([WithAccounts]). It is safe for concurrent use.
type Accounts struct {
	iterations int // of PBKDF2 for new passwords

	mu    sync.Mutex
	users map[string]*account // by strings.ToLower(name)
}

// MaxAccounts bounds the accounts an [Accounts] holds.
const MaxAccounts = 10000

// Passwords have 8 to 128 bytes.
const (
	minPassword = 8
	maxPassword = 128
)

// DefaultHashCost is the number of PBKDF2-HMAC-SHA256 iterations a password
// hash costs by default: OWASP's figure, about a quarter of a second of
// CPU, which makes guessing slow.
const DefaultHashCost = 600_000

type account struct {
	name       string // as first signed in
	salt       []byte
	hash       []byte
	iterations int
}

// AccountsOption configures [NewAccounts].
type AccountsOption interface{ applyAccounts(*Accounts) }

type hashCost int

func (n hashCost) applyAccounts(a *Accounts) { a.iterations = int(n) }

// HashCost sets the PBKDF2 iterations of the passwords set from now on
// (those set before keep theirs). Default [DefaultHashCost]. Tests lower
// it: the race detector makes hashing about fifteen times slower.
func HashCost(iterations int) AccountsOption { return hashCost(iterations) }

// NewAccounts returns an empty set of accounts.
func NewAccounts(opts ...AccountsOption) *Accounts {
	a := &Accounts{iterations: DefaultHashCost, users: make(map[string]*account)}
	for _, o := range opts {
		o.applyAccounts(a)
	}
	if a.iterations < 1 {
		a.iterations = DefaultHashCost
	}
	return a
}

// SignIn checks name and password and returns the account's name (as
// first signed in). A name without an account gets one, with this
// password. It returns [ErrWrongPassword], [ErrReservedName],
// [ErrTooManyAccounts], or an error saying what is wrong with the name or
// the password.
func (a *Accounts) SignIn(name, password string) (string, error) {
	name = strings.TrimSpace(name)
	if err := validName(name); err != nil {
		return "", err
	}
	if strings.EqualFold(name, "admin") {
		return "", ErrReservedName
	}
	if n := len(password); n < minPassword || n > maxPassword {
		return "", fmt.Errorf("chat: a password has %d to %d bytes", minPassword, maxPassword)
	}
	key := strings.ToLower(name)
	a.mu.Lock()
	acc := a.users[key]
	a.mu.Unlock()
	if acc == nil {
		// Hash outside the lock, then add the account unless a concurrent
		// sign-in made it meanwhile.
		salt := make([]byte, 16)
		rand.Read(salt)
		acc = &account{name: name, salt: salt, iterations: a.iterations}
		acc.hash = hashPassword(password, salt, acc.iterations)
		a.mu.Lock()
		prev, full := a.users[key], len(a.users) >= MaxAccounts
		if prev == nil && !full {
			a.users[key] = acc
		}
		a.mu.Unlock()
		switch {
		case prev == nil && full:
			return "", ErrTooManyAccounts
		case prev == nil:
			return name, nil
		}
		acc = prev
	}
	if subtle.ConstantTimeCompare(hashPassword(password, acc.salt, acc.iterations), acc.hash) != 1 {
		return "", ErrWrongPassword
	}
	return acc.name, nil
}

func hashPassword(password string, salt []byte, iterations int) []byte {
	h, err := pbkdf2.Key(sha256.New, password, salt, iterations, 32)
	if err != nil {
		panic(err) // only for a key length out of range: 32 is not
	}
	return h
}

// validName accepts 1 to 24 letters, digits, spaces, '_' and '-'.
func validName(name string) error {
	if name == "" || utf8.RuneCountInString(name) > 24 {
		return errors.New("chat: a name has 1 to 24 characters")
	}
	for _, r := range name {
		switch {
		case r == ' ' || r == '_' || r == '-':
		case unicode.IsLetter(r), unicode.IsDigit(r):
		default:
			return fmt.Errorf("chat: %q is not allowed in a name", r)
		}
	}
	return nil
}

// CookieName is the name of the session cookie the server sets on sign-in.
const CookieName = "chat_session"

// cookieLife is how long a sign-in lasts.
const cookieLife = 24 * time.Hour

// cookies makes and checks session cookies: the name, when it expires, and
// an HMAC-SHA256 of both under the server's key.
type cookies struct{ key []byte }

func (c cookies) make(name string, expires time.Time) string {
	n := base64.RawURLEncoding.EncodeToString([]byte(name))
	exp := strconv.FormatInt(expires.Unix(), 10)
	return n + "." + exp + "." + base64.RawURLEncoding.EncodeToString(c.mac(n, exp))
}

func (c cookies) mac(name, exp string) []byte {
	h := hmac.New(sha256.New, c.key)
	h.Write([]byte(name))
	h.Write([]byte{'.'})
	h.Write([]byte(exp))
	return h.Sum(nil)
}

// check returns the name a cookie value proves, or false.
func (c cookies) check(v string, now time.Time) (string, bool) {
	n, rest, ok1 := strings.Cut(v, ".")
	exp, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return "", false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, c.mac(n, exp)) {
		return "", false
	}
	t, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || now.Unix() >= t {
		return "", false
	}
	name, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil {
		return "", false
	}
	return string(name), true
}

// authenticate is the bridge's Authenticate hook: the identity is the
// name the request's session cookie proves. A request without a valid one
// is let in as anonymous, for requireSignIn to refuse its hello: a
// browser cannot read why an upgrade failed, but it can read the hello's
// "unauthorized", and courier.js then stops instead of retrying.
func (s *Server) authenticate(r *http.Request) (bridge.Identity, error) {
	ck, err := r.Cookie(CookieName)
	if err != nil {
		return bridge.Identity{}, nil
	}
	name, ok := s.cookies.check(ck.Value, time.Now())
	if !ok {
		return bridge.Identity{}, nil
	}
	return bridge.Identity{ID: name}, nil
}

// requireSignIn is the bridge's HelloAuth hook: it refuses anonymous
// clients. The hello's auth payload proves nothing and is ignored.
func requireSignIn(_ context.Context, id bridge.Identity, _ json.RawMessage) (bridge.Identity, error) {
	if id.ID == "" {
		return bridge.Identity{}, errors.New("chat: sign in first")
	}
	return id, nil
}

// signIn serves POST /signin: {"name": "...", "password": "..."} in JSON.
// It answers {"name": "..."} with the session cookie, or {"error": "..."}
// with 400, 401 (wrong password) or 403 (reserved name). Only JSON from
// the page's own origin is accepted, so another site's form cannot sign a
// visitor in under its own account.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	fail := func(code int, err error) {
		reply(code, map[string]string{"error": strings.TrimPrefix(err.Error(), "chat: ")})
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		fail(http.StatusUnsupportedMediaType, errors.New("chat: send JSON"))
		return
	}
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
		fail(http.StatusForbidden, errors.New("chat: sign in from the chat's own page"))
		return
	}
	var req struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&req); err != nil {
		fail(http.StatusBadRequest, errors.New("chat: send {\"name\": ..., \"password\": ...}"))
		return
	}
	name, err := s.accounts.SignIn(req.Name, req.Password)
	switch {
	case errors.Is(err, ErrWrongPassword):
		fail(http.StatusUnauthorized, err)
		return
	case errors.Is(err, ErrReservedName):
		fail(http.StatusForbidden, err)
		return
	case err != nil:
		fail(http.StatusBadRequest, err)
		return
	}
	expires := time.Now().Add(cookieLife)
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: s.cookies.make(name, expires), Path: "/", Expires: expires,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
	reply(http.StatusOK, map[string]string{"name": name})
}
