package bridge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
)

// TestHostileInput tries one class of hostile input per subtest against a
// bridge behind an http.Server set up as docs/ops.md tells hosts to, over
// real sockets on 127.0.0.1, and checks the answer docs/protocol.md
// promises: an error code, a close code or an HTTP status. After each class
// it checks that the bridge logged no error (a recovered panic is logged
// as one) and sent no "internal" error, and that a bystander, connected and
// subscribed before the hostile input, still publishes and receives. The
// table in docs/reliability.md ("Hostile input") names these subtests;
// TestHostileInputDocs keeps the two in step.
func TestHostileInput(t *testing.T) {
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			h := newHostile(t, tc.opts...)
			tc.run(t, h)
			h.bystanderUnaffected(t, !tc.publishes)
			h.noPanic(t)
		})
	}
}

// hostileCase is one class of hostile input.
type hostileCase struct {
	name      string
	opts      []bridge.Option // more options for this class's bridge
	publishes bool            // the class publishes to the bystander's topic on purpose
	run       func(t *testing.T, h *hostile)
}

// hostile is one class's bridge and its bystander.
type hostile struct {
	*env
	seen *codeSeen      // for errCode and friends
	log  *errorLog      // what the bridge logged at level Error
	by   *client.Client // the bystander, "bystander" by identity
	in   *inbox         // the bystander's subscription to chat.bystander
}

// newHostile starts a bridge that requires a bearer token, exposes a few
// topics, rooms and endpoints, and has a bystander subscribed to
// chat.bystander.
func newHostile(t *testing.T, opts ...bridge.Option) *hostile {
	t.Helper()
	b, err := bus.New(bus.MaxTopics(hostileMaxTopics))
	if err != nil {
		t.Fatal(err)
	}
	log := &errorLog{}
	br, err := bridge.New(b, append([]bridge.Option{
		bridge.WithLogger(slog.New(log)),
		bridge.Authenticate(requireBearer),
		bridge.Expose("chat.>", bridge.Subscribe, bridge.Publish),
		bridge.Expose("rpc.>", bridge.Request),
		bridge.ExposeRooms("lobby", bridge.Join, bridge.Presence),
		bridge.ExposeRooms("quiet", bridge.Join),
		bridge.ExposeRooms("vault", bridge.Join),
		bridge.ExposeRooms("r.*", bridge.Join, bridge.Presence),
		bridge.Authorize(func(_ context.Context, _ bridge.Identity, _ bridge.Action, name string) error {
			if name == "vault" || name == "chat.secret" {
				return errors.New("not for clients")
			}
			return nil
		}),
	}, opts...)...)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	srv := opsServer(br)
	e := &env{t: t, bus: b, br: br, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/bus/"}
	t.Cleanup(e.close)
	add, _ := bus.NewEndpoint[[2]int, int](b, "rpc.add")
	h1, _ := add.Handle(func(_ context.Context, r [2]int) (int, error) { return r[0] + r[1], nil })
	slow, _ := bus.NewEndpoint[int, int](b, "rpc.slow")
	h2, _ := slow.Handle(func(ctx context.Context, _ int) (int, error) { <-ctx.Done(); return 0, ctx.Err() })
	t.Cleanup(func() { h1.Stop(); h2.Stop() })

	h := &hostile{env: e, seen: &codeSeen{codes: map[string]bool{}}, log: log, in: newInbox()}
	h.by = e.dial(as("bystander"))
	if _, err := h.by.Subscribe(ctxT(t), "chat.bystander", h.in.handle); err != nil {
		t.Fatal(err)
	}
	return h
}

// hostileMaxTopics is the bus's bound on topics in these tests: a host
// exposing wildcards to untrusted clients sets one (docs/security.md).
const hostileMaxTopics = 200

// opsServer mounts h at /bus/ on 127.0.0.1 behind an http.Server with the
// settings docs/ops.md gives hosts, its header timeout shortened so that a
// test can wait it out.
func opsServer(h http.Handler) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("/bus/", h)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ReadHeaderTimeout = time.Second
	srv.Config.IdleTimeout = 30 * time.Second
	srv.Config.MaxHeaderBytes = 16 << 10
	srv.Start()
	return srv
}

// requireBearer is bearer without anonymous clients: no token is 401,
// "Bearer banned" 403.
func requireBearer(r *http.Request) (bridge.Identity, error) {
	switch r.Header.Get("Authorization") {
	case "":
		return bridge.Identity{}, bridge.ErrUnauthorized
	case "Bearer banned":
		return bridge.Identity{}, bridge.ErrForbidden
	}
	return bearer(r)
}

func bearerHeader(user string) http.Header {
	return http.Header{"Authorization": {"Bearer " + user}}
}

// conn dials as user without saying hello.
func (h *hostile) conn(user string) *rawConn { return h.raw(bearerHeader(user)) }

// hello dials as user and says hello.
func (h *hostile) hello(user string) (*rawConn, wire.Frame) {
	h.t.Helper()
	r := h.conn(user)
	r.send(`{"op":"hello","v":1,"id":"h"}`)
	w := r.answer("h")
	if w.Op != wire.OpWelcome {
		h.t.Fatalf("hello as %s: got %+v, want a welcome", user, w)
	}
	return r, w
}

// bystanderUnaffected has the bystander publish to its own topic and waits
// until its subscription delivers that message. quiet: nothing else may
// have reached the topic before it.
func (h *hostile) bystanderUnaffected(t *testing.T, quiet bool) {
	t.Helper()
	marker := "after " + t.Name()
	if _, err := h.by.Publish(ctxT(t), "chat.bystander", marker, client.Ack()); err != nil {
		t.Fatalf("the bystander's publish: %v", err)
	}
	want, _ := json.Marshal(marker)
	for n := 1; ; n++ {
		msgs := h.in.wait(t, n)
		if string(msgs[n-1].Data) != string(want) {
			continue
		}
		if quiet && n > 1 {
			t.Errorf("the bystander's topic got %d messages from the hostile input, the first %s", n-1, msgs[0].Data)
		}
		return
	}
}

// noPanic checks that the bridge logged no error (it logs every panic it
// recovers) and sent no error frame with the code "internal".
func (h *hostile) noPanic(t *testing.T) {
	t.Helper()
	if recs := h.log.records(); len(recs) > 0 {
		t.Errorf("the bridge logged errors: %q", recs)
	}
	if n := h.br.Stats().ErrorFrames[wire.CodeInternal]; n != 0 {
		t.Errorf("%d error frames with the code internal", n)
	}
}

// errorLog is a slog.Handler that keeps the messages of Error records.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *errorLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelError }

func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "panic" {
			msg += fmt.Sprintf(" (panic: %v)", a.Value)
		}
		return true
	})
	l.mu.Lock()
	l.msgs = append(l.msgs, msg)
	l.mu.Unlock()
	return nil
}

func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *errorLog) WithGroup(string) slog.Handler      { return l }

func (l *errorLog) records() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.msgs)
}

// write sends a message that the server may refuse by closing the
// connection; false once it did.
func (r *rawConn) write(typ int, msg string) bool {
	r.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return r.ws.WriteMessage(typ, []byte(msg)) == nil
}

// next returns the next frame, whatever it is.
func (r *rawConn) next() wire.Frame {
	r.t.Helper()
	return r.expect("any frame", func(*wire.Frame) bool { return true })
}

// jsonFrame encodes a frame built as a map, for members whose values need
// escaping.
func jsonFrame(t *testing.T, f map[string]any) string {
	t.Helper()
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func hostileCases() []hostileCase {
	return []hostileCase{
		// ---- before the upgrade: HTTP answers
		{name: "missing_auth", run: func(t *testing.T, h *hostile) {
			if got := dialStatus(t, h.url, nil); got != http.StatusUnauthorized {
				t.Errorf("no credentials: HTTP %d, want 401", got)
			}
			if got := dialStatus(t, h.url, http.Header{"Authorization": {"Bearer banned"}}); got != http.StatusForbidden {
				t.Errorf("refused with ErrForbidden: HTTP %d, want 403", got)
			}
		}},
		{name: "cross_origin_upgrade", run: func(t *testing.T, h *hostile) {
			for _, origin := range []string{"http://evil.example", "null", "http://127.0.0.1:1", "::"} {
				hd := bearerHeader("mallory")
				hd.Set("Origin", origin)
				if got := dialStatus(t, h.url, hd); got != http.StatusForbidden {
					t.Errorf("Origin %q: HTTP %d, want 403", origin, got)
				}
			}
		}},
		{name: "not_a_websocket_upgrade", run: func(t *testing.T, h *hostile) {
			httpURL := h.srv.URL + "/bus/"
			for _, tc := range []struct {
				what   string
				method string
				hdr    map[string]string
				want   int
			}{
				{"plain GET", "GET", nil, http.StatusUpgradeRequired},
				{"WebSocket version 12", "GET", map[string]string{"Sec-WebSocket-Version": "12"}, http.StatusBadRequest},
				{"no Sec-WebSocket-Key", "GET", map[string]string{"Sec-WebSocket-Key": ""}, http.StatusBadRequest},
				{"POST", "POST", map[string]string{}, http.StatusMethodNotAllowed},
			} {
				req, _ := http.NewRequest(tc.method, httpURL, nil)
				req.Header.Set("Authorization", "Bearer mallory")
				if tc.hdr != nil {
					req.Header.Set("Connection", "Upgrade")
					req.Header.Set("Upgrade", "websocket")
					req.Header.Set("Sec-WebSocket-Version", "13")
					req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
					for k, v := range tc.hdr {
						req.Header.Set(k, v)
					}
				}
				resp, err := h.srv.Client().Do(req)
				if err != nil {
					t.Fatalf("%s: %v", tc.what, err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("%s: HTTP %d, want %d", tc.what, resp.StatusCode, tc.want)
				}
			}
		}},
		{name: "huge_http_headers", run: func(t *testing.T, h *hostile) {
			hd := bearerHeader("mallory")
			hd.Set("X-Padding", strings.Repeat("p", 32<<10))
			if got := dialStatus(t, h.url, hd); got != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("32 KiB of headers: HTTP %d, want 431", got)
			}
		}},
		{name: "slow_handshake", run: func(t *testing.T, h *hostile) {
			// Half an HTTP request, then nothing: the server's
			// ReadHeaderTimeout closes the connection; the bridge never
			// sees it.
			before := h.br.Stats()
			nc, err := net.Dial("tcp", h.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := io.WriteString(nc, "GET /bus/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"); err != nil {
				t.Fatal(err)
			}
			nc.SetReadDeadline(time.Now().Add(15 * time.Second))
			n, err := bufio.NewReader(nc).Read(make([]byte, 1))
			var ne net.Error
			if n != 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("read %d bytes, %v: want the server to close the connection", n, err)
			}
			if after := h.br.Stats(); after.Accepted != before.Accepted || after.Refused != before.Refused {
				t.Errorf("the bridge saw the half request: %+v", after)
			}
		}},

		// ---- the handshake
		{name: "silent_after_upgrade", opts: []bridge.Option{bridge.HandshakeTimeout(time.Second)}, run: func(t *testing.T, h *hostile) {
			r := h.conn("mallory")
			closeCode(t, h.seen, r, wire.CloseHelloTimeout)
		}},
		{name: "ops_before_hello", run: func(t *testing.T, h *hostile) {
			r := h.conn("mallory")
			for i, f := range []string{
				`{"op":"subscribe","id":"b0","sub":"s","pattern":"chat.bystander"}`,
				`{"op":"publish","id":"b1","topic":"chat.bystander","data":1}`,
				`{"op":"join","id":"b2","rooms":["lobby"]}`,
				`{"op":"ping","id":"b3"}`,
				`{"op":"bye","id":"b4"}`,
			} {
				r.send(f)
				errCode(t, h.seen, r, fmt.Sprintf("b%d", i), wire.CodeHelloRequired)
			}
			r.send(`{"op":"hello","v":1,"id":"h"}`)
			answerOp(t, r, "h", wire.OpWelcome)
			r.alive()
		}},
		{name: "second_hello", run: func(t *testing.T, h *hostile) {
			r, w := h.hello("mallory")
			r.send(`{"op":"hello","v":1,"id":"h2"}`)
			errCode(t, h.seen, r, "h2", wire.CodeBadFrame)
			r.send(`{"op":"hello","v":1,"id":"h3","resume":"` + w.Resume + `"}`)
			errCode(t, h.seen, r, "h3", wire.CodeBadFrame)
			r.send(`{"op":"hello","v":2,"id":"h4"}`)
			errCode(t, h.seen, r, "h4", wire.CodeBadFrame)
			r.alive()
			if s := h.br.Stats(); s.Sessions != 2 {
				t.Errorf("%d sessions, want the bystander's and the first hello's", s.Sessions)
			}
		}},
		{name: "wrong_protocol_version", run: func(t *testing.T, h *hostile) {
			for _, hello := range []string{`{"op":"hello","v":2,"id":"h"}`, `{"op":"hello","id":"h"}`, `{"op":"hello","v":-1,"id":"h"}`} {
				r := h.conn("mallory")
				r.send(hello)
				errCode(t, h.seen, r, "h", wire.CodeVersion)
				closeCode(t, h.seen, r, wire.CloseVersion)
			}
			// A version that is not a number is a bad frame; the
			// connection may still say hello.
			r := h.conn("mallory")
			r.send(`{"op":"hello","v":"1","id":"h"}`)
			errCode(t, h.seen, r, "h", wire.CodeBadFrame)
			r.send(`{"op":"hello","v":1,"id":"h2"}`)
			answerOp(t, r, "h2", wire.OpWelcome)
		}},
		{name: "foreign_resume_token", run: func(t *testing.T, h *hostile) {
			alice, aw := h.hello("alice")
			steal := func() {
				t.Helper()
				r := h.conn("mallory")
				r.send(`{"op":"hello","v":1,"id":"h","resume":"` + aw.Resume + `"}`)
				if w := answerOp(t, r, "h", wire.OpWelcome); *w.Resumed || w.Session == aw.Session {
					t.Fatalf("mallory resumed alice's session: %+v", w)
				}
			}
			steal() // while alice is connected: she is not replaced
			alice.alive()
			alice.ws.Close()
			waitUntil(t, func() bool {
				info, ok := sessionInfo(t, h.br, aw.Session)
				return ok && !info.Connected
			})
			steal() // while her session waits for her
			if id, ok := h.br.Identity(aw.Session); !ok || id.ID != "alice" {
				t.Fatalf("alice's session: %+v, %v", id, ok)
			}
			r := h.conn("alice")
			r.send(`{"op":"hello","v":1,"id":"h","resume":"` + aw.Resume + `"}`)
			if w := answerOp(t, r, "h", wire.OpWelcome); !*w.Resumed || w.Session != aw.Session {
				t.Fatalf("alice could not resume: %+v", w)
			}
			if n := h.br.Stats().ResumesFailed; n != 2 {
				t.Errorf("ResumesFailed %d, want 2", n)
			}
		}},
		{name: "forged_resume_token", run: func(t *testing.T, h *hostile) {
			alice, aw := h.hello("alice")
			sid, sig, _ := strings.Cut(aw.Resume, ".")
			flipped := []byte(sig)
			flipped[0] ^= 'A' ^ 'B'
			for _, tok := range []string{
				sid + ".AAAAAAAAAAAAAAAAAAAAAAAA",
				sid + "." + string(flipped),
				sid + "." + sig + "AA",
				sid + "." + sig[:len(sig)-2],
				sid,
				".",
				sid + ".!!!!",
				strings.Repeat("A", 22) + "." + sig,
				strings.Repeat("x", 60<<10),
			} {
				r := h.conn("alice")
				r.send(jsonFrame(t, map[string]any{"op": "hello", "v": 1, "id": "h", "resume": tok}))
				if w := answerOp(t, r, "h", wire.OpWelcome); *w.Resumed || w.Session == aw.Session {
					t.Fatalf("token %.40q resumed: %+v", tok, w)
				}
			}
			alice.alive()
		}},
		{name: "many_connections_one_identity", opts: []bridge.Option{bridge.MaxConnections(3)}, run: func(t *testing.T, h *hostile) {
			var conns []*rawConn
			var welcomes []wire.Frame
			for range 3 {
				r, w := h.hello("mallory")
				conns, welcomes = append(conns, r), append(welcomes, w)
			}
			r := h.conn("mallory")
			r.send(`{"op":"hello","v":1,"id":"h"}`)
			errCode(t, h.seen, r, "h", wire.CodeLimit)
			closeCode(t, h.seen, r, wire.CloseTooMany)
			// Other identities are not counted with mallory.
			h.hello("alice")
			// A resume of a session whose connection is open replaces it.
			r = h.conn("mallory")
			r.send(`{"op":"hello","v":1,"id":"h","resume":"` + welcomes[0].Resume + `"}`)
			if w := answerOp(t, r, "h", wire.OpWelcome); !*w.Resumed {
				t.Fatalf("resume at the limit: %+v", w)
			}
			closeCode(t, h.seen, conns[0], wire.CloseReplaced)
			// A connection that ends makes room.
			conns[1].ws.Close()
			waitUntil(t, func() bool { return h.br.Stats().Connections == 4 }) // bystander, alice, 2 of mallory
			h.hello("mallory")
		}},

		// ---- WebSocket messages that are not protocol messages
		{name: "malformed_json", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			for _, msg := range []string{`{"op":`, `{"op":"ping",}`, `{"op":"ping"}x`, `[{"op":"ping"}`, `{'op':'ping'}`, `{"op":"ping"`} {
				r.send(msg)
				errNoID(t, h.seen, r, wire.CodeBadJSON)
			}
			r.alive()
		}},
		{name: "not_an_object", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			for _, msg := range []string{`42`, `"ping"`, `null`, `true`, `[1]`, `[[{"op":"ping"}]]`, `[null]`} {
				r.send(msg)
				errNoID(t, h.seen, r, wire.CodeBadJSON)
			}
			r.alive()
		}},
		{name: "empty_messages", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			for _, msg := range []string{"", " \r\n\t"} {
				r.send(msg)
				errNoID(t, h.seen, r, wire.CodeBadJSON)
			}
			for _, msg := range []string{`{}`, `[{}]`, `{"id":""}`} {
				r.send(msg)
				errNoID(t, h.seen, r, wire.CodeBadFrame)
			}
			r.send(`[]`) // ignored: the next answer is the ping's
			r.send(`{"op":"ping","id":"p"}`)
			if f := r.next(); f.Op != wire.OpPong || f.ID != "p" {
				t.Fatalf("after an empty array: %+v, want the pong", f)
			}
		}},
		{name: "binary_messages", run: func(t *testing.T, h *hostile) {
			r := h.conn("mallory")
			binary := func() {
				t.Helper()
				if !r.write(websocket.BinaryMessage, `{"op":"hello","v":1,"id":"b"}`) {
					t.Fatal("write failed")
				}
				errNoID(t, h.seen, r, wire.CodeBadJSON)
			}
			binary() // before the hello
			r.send(`{"op":"hello","v":1,"id":"h"}`)
			answerOp(t, r, "h", wire.OpWelcome)
			binary() // and after
			r.alive()
		}},
		{name: "invalid_utf8", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			for _, msg := range []string{
				"{\"op\":\"publish\",\"id\":\"u\",\"topic\":\"chat.bystander\",\"data\":\"\xff\xfe\"}",
				"{\"op\":\"publish\",\"id\":\"u\",\"topic\":\"chat.bystander\",\"data\":\"\xc0\xaf\"}",     // overlong '/'
				"{\"op\":\"publish\",\"id\":\"u\",\"topic\":\"chat.bystander\",\"data\":\"\xed\xa0\x80\"}", // a UTF-16 surrogate
				"{\"op\":\"publish\",\"id\":\"u\",\"topic\":\"chat.bystander\",\"data\":1,\"headers\":{\"k\":\"\xff\"}}",
				"{\"op\":\"ping\",\"id\":\"\xff\"}",
				"[{\"op\":\"ping\",\"id\":\"u\"},\"\xe2\x82\"]",
			} {
				r.send(msg)
				errNoID(t, h.seen, r, wire.CodeBadJSON)
			}
			r.alive()
			for _, f := range r.buf {
				if f.ID == "u" {
					t.Errorf("a frame of a message that is not UTF-8 was answered: %+v", f)
				}
			}
			// What the host publishes itself that is not UTF-8 reaches
			// clients base64-encoded, in a text frame that is UTF-8.
			r.send(`{"op":"subscribe","id":"s","sub":"s","pattern":"chat.legacy","volatile":true}`)
			answerOp(t, r, "s", wire.OpSubscribed)
			latin1 := "\"caf\xe9\""
			if _, err := h.bus.PublishRaw(context.Background(), "chat.legacy", []byte(latin1)); err != nil {
				t.Fatal(err)
			}
			r.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, msg, err := r.ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			f, err := wire.Parse(msg)
			if !utf8.Valid(msg) || err != nil || f.Op != wire.OpMessage || string(f.Data64) != latin1 || f.Data != nil {
				t.Fatalf("message %q (%v), want the data in data64", msg, err)
			}
		}},
		{name: "deep_nesting", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
			for _, msg := range []string{
				`{"op":"publish","id":"d","topic":"chat.bystander","data":` + deep + `}`,
				`[` + deep + `]`,
				`{"op":"ping","id":"d","x":` + strings.Repeat(`{"a":`, 10500) + `1` + strings.Repeat(`}`, 10500) + `}`,
			} {
				r.send(msg)
				errNoID(t, h.seen, r, wire.CodeBadJSON)
			}
			r.alive()
		}},
		{name: "huge_numbers", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			const huge = "9223372036854775807"
			r.send(`{"op":"subscribe","id":"s","sub":"s","pattern":"chat.nums","ack_wait":` + huge + `}`)
			answerOp(t, r, "s", wire.OpSubscribed)
			for i, n := range []string{"1e400", "18446744073709551616", "-1", "1.5", "99999999999999999999999999999999"} {
				r.send(fmt.Sprintf(`{"op":"ack","id":"n%d","sub":"s","n":%s}`, i, n))
				errCode(t, h.seen, r, fmt.Sprintf("n%d", i), wire.CodeBadFrame)
			}
			r.send(`{"op":"subscribe","id":"m","sub":"m","pattern":"chat.x","max_inflight":1e30}`)
			errCode(t, h.seen, r, "m", wire.CodeBadFrame)
			// A huge timeout is the longest one, not an expired one.
			r.send(`{"op":"request","id":"q","topic":"rpc.add","data":[2,3],"timeout":` + huge + `}`)
			if f := answerOp(t, r, "q", wire.OpReply); string(f.Data) != "5" {
				t.Fatalf("reply %+v", f)
			}
			// A huge ack_wait or nack delay is the longest one: a delivery
			// is not sent again within the shortest ack_wait (100 ms).
			for _, d := range []string{"1", "2"} {
				if _, err := h.bus.PublishRaw(context.Background(), "chat.nums", []byte(d)); err != nil {
					t.Fatal(err)
				}
			}
			r.op(wire.OpMessage)
			m2 := r.op(wire.OpMessage)
			r.send(fmt.Sprintf(`{"op":"nack","sub":"s","n":%d,"delay":%s}`, m2.N, huge))
			time.Sleep(300 * time.Millisecond)
			r.alive()
			for _, f := range r.buf {
				if f.Op == wire.OpMessage {
					t.Fatalf("sent again: %+v", f)
				}
			}
		}},
		{name: "long_ids", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			long := strings.Repeat("i", 65)
			for _, f := range []string{
				`{"op":"ping","id":"` + long + `"}`,
				`{"op":"publish","id":"` + long + `","topic":"chat.bystander","data":1}`,
				`{"op":"fly","id":"` + strings.Repeat("i", 60<<10) + `"}`,
				`{"op":"ping","id":7}`,
			} {
				r.send(f)
				errNoID(t, h.seen, r, wire.CodeBadFrame)
			}
			r.send(`{"op":"ping","id":"` + long[:64] + `"}`)
			answerOp(t, r, long[:64], wire.OpPong)
			r.send(`{"op":"publish","id":"p1","topic":"chat.pids","data":1,"pid":"` + strings.Repeat("p", 256) + `"}`)
			errCode(t, h.seen, r, "p1", wire.CodeBadFrame)
			r.send(`{"op":"publish","id":"p2","topic":"chat.pids","data":1,"pid":"` + strings.Repeat("p", 255) + `"}`)
			answerOp(t, r, "p2", wire.OpPuback)
		}},
		{name: "unknown_ops", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			for i, op := range []string{"fly", "welcome", "error", "pong", "PING", "hello "} {
				r.send(fmt.Sprintf(`{"op":%q,"id":"u%d"}`, op, i))
				errCode(t, h.seen, r, fmt.Sprintf("u%d", i), wire.CodeUnknownOp)
			}
			for i, op := range []string{`""`, `null`, `5`, `["ping"]`} {
				r.send(fmt.Sprintf(`{"op":%s,"id":"x%d"}`, op, i))
				errCode(t, h.seen, r, fmt.Sprintf("x%d", i), wire.CodeBadFrame)
			}
			r.alive()
		}},
		{name: "wrong_member_types", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			for i, f := range []string{
				`{"op":"subscribe","id":"w0","sub":1,"pattern":"chat.a"}`,
				`{"op":"publish","id":"w1","topic":"chat.bystander","data":1,"headers":{"k":1}}`,
				`{"op":"join","id":"w2","rooms":"lobby"}`,
				`{"op":"presence","id":"w3","room":"lobby","watch":"yes"}`,
				`{"op":"subscribe","id":"w4","sub":"a","pattern":"chat.a","start":"after","epoch":"abc"}`,
				`{"op":"publish","id":"w5","topic":"chat.bystander"}`,
				`{"op":"publish","id":"w6","topic":["chat","bystander"],"data":1}`,
				`{"op":"ack","id":"w7","sub":"s","n":"1"}`,
				`{"op":"subscribe","id":"w8","sub":"a","pattern":"chat.a","volatile":"true"}`,
			} {
				r.send(f)
				errCode(t, h.seen, r, fmt.Sprintf("w%d", i), wire.CodeBadFrame)
			}
			r.alive()
		}},
		{name: "reused_ids", run: func(t *testing.T, h *hostile) {
			r, w := h.hello("mallory")
			// Ids are not tracked: each frame gets its answer.
			r.send(`[{"op":"ping","id":"dup"},{"op":"ping","id":"dup"}]`)
			answerOp(t, r, "dup", wire.OpPong)
			answerOp(t, r, "dup", wire.OpPong)
			r.send(`[{"op":"request","id":"q","topic":"rpc.add","data":[1,2]},{"op":"request","id":"q","topic":"rpc.add","data":[3,4]}]`)
			got := []string{string(answerOp(t, r, "q", wire.OpReply).Data), string(answerOp(t, r, "q", wire.OpReply).Data)}
			if sort.Strings(got); got[0] != "3" || got[1] != "7" {
				t.Fatalf("replies %v, want 3 and 7", got)
			}
			// A server request takes one reply: a second one with its id
			// is not_found.
			res := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err := h.br.Request(ctx, w.Session, "ui.ask", []byte("1"))
				res <- err
			}()
			q := r.op(wire.OpRequest)
			reply := fmt.Sprintf(`{"op":"reply","id":%q,"data":2}`, q.ID)
			r.send(reply)
			if err := <-res; err != nil {
				t.Fatalf("Request: %v", err)
			}
			r.send(reply)
			errCode(t, h.seen, r, q.ID, wire.CodeNotFound)
			r.alive()
		}},
		{name: "acks_for_messages_never_sent", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			r.send(`{"op":"subscribe","id":"s","sub":"s","pattern":"chat.acks"}`)
			answerOp(t, r, "s", wire.OpSubscribed)
			for i, f := range []string{
				`{"op":"ack","id":"a0","sub":"s","n":12345}`,
				`{"op":"ack","id":"a1","sub":"s","upto":18446744073709551615}`,
				`{"op":"nack","id":"a2","sub":"s","n":999,"delay":5}`,
			} {
				r.send(f)
				answerOp(t, r, fmt.Sprintf("a%d", i), wire.OpOK)
			}
			r.send(`{"op":"ack","id":"a3","sub":"ghost","n":1}`)
			errCode(t, h.seen, r, "a3", wire.CodeNotFound)
			r.send(`{"op":"nack","id":"a4","sub":"ghost","n":1}`)
			errCode(t, h.seen, r, "a4", wire.CodeNotFound)
			r.send(`{"op":"ack","id":"a5","sub":"s"}`)
			errCode(t, h.seen, r, "a5", wire.CodeBadFrame)
			// Deliveries go on as if nothing happened, numbered from 1.
			if _, err := h.bus.PublishRaw(context.Background(), "chat.acks", []byte("1")); err != nil {
				t.Fatal(err)
			}
			if m := r.op(wire.OpMessage); m.N != 1 || m.Attempt > 1 {
				t.Fatalf("delivery %+v, want n 1, first attempt", m)
			}
			r.send(`{"op":"ack","id":"a6","sub":"s","n":1}`)
			answerOp(t, r, "a6", wire.OpOK)
		}},

		// ---- names and rights
		{name: "subscribe_everything", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			for i, p := range []string{">", "*", "*.>", "*.*", "chat", "*.bystander"} {
				r.send(fmt.Sprintf(`{"op":"subscribe","id":"e%d","sub":"e%d","pattern":%q}`, i, i, p))
				errCode(t, h.seen, r, fmt.Sprintf("e%d", i), wire.CodeForbidden)
			}
			r.alive()
		}},
		{name: "wildcards_skip_reserved_topics", opts: []bridge.Option{bridge.Expose(">", bridge.Subscribe)}, run: func(t *testing.T, h *hostile) {
			// Exposed to everything, a client still sees none of the
			// bus's own topics: no room events, no dead letters.
			r, _ := h.hello("mallory")
			r.send(`{"op":"subscribe","id":"all","sub":"all","pattern":">","volatile":true}`)
			answerOp(t, r, "all", wire.OpSubscribed)
			other, _ := h.hello("alice")
			other.send(`{"op":"join","id":"j","rooms":["lobby"]}`)
			answerOp(t, other, "j", wire.OpOK)
			if _, err := h.bus.PublishRaw(context.Background(), "chat.after-join", []byte("1")); err != nil {
				t.Fatal(err)
			}
			if m := r.op(wire.OpMessage); m.Topic != "chat.after-join" {
				t.Fatalf("a '>' subscription got %+v", m)
			}
			r.send(`{"op":"subscribe","id":"rooms","sub":"rooms","pattern":"$rooms.>"}`)
			errCode(t, h.seen, r, "rooms", wire.CodeInvalidName)
		}},
		{name: "reserved_topics", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			for i, f := range []string{
				`{"op":"subscribe","id":"r0","sub":"a","pattern":"$rooms.lobby"}`,
				`{"op":"subscribe","id":"r1","sub":"a","pattern":"$dead.chat.bystander"}`,
				`{"op":"subscribe","id":"r2","sub":"a","pattern":"$>"}`,
				`{"op":"subscribe","id":"r3","sub":"a","pattern":"$rooms.*"}`,
				`{"op":"publish","id":"r4","topic":"$rooms.lobby","data":{"member":"x","joined":true}}`,
				`{"op":"publish","id":"r5","topic":"$dead.chat.bystander","data":1}`,
				`{"op":"join","id":"r6","rooms":["$rooms"]}`,
				`{"op":"presence","id":"r7","room":"$lobby"}`,
				`{"op":"request","id":"r8","topic":"$rpc.add","data":[1,2]}`,
			} {
				r.send(f)
				errCode(t, h.seen, r, fmt.Sprintf("r%d", i), wire.CodeInvalidName)
			}
			r.alive()
		}},
		{name: "pattern_syntax", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			i := 0
			bad := func(sub, pattern string) {
				t.Helper()
				r.send(jsonFrame(t, map[string]any{"op": "subscribe", "id": fmt.Sprint(i), "sub": sub, "pattern": pattern}))
				errCode(t, h.seen, r, fmt.Sprint(i), wire.CodeInvalidName)
				i++
			}
			for _, p := range []string{"chat..a", "chat.>.a", "chat.a*", "chat.", ".chat", "chat.a b", "chat.\x00", "chat.é",
				"chat." + strings.Repeat("a", 300), "chat.>>", "chat.**"} {
				bad("s", p)
			}
			for _, sub := range []string{"bad id", strings.Repeat("s", 65), "", "s/1"} {
				bad(sub, "chat.a")
			}
			for _, topic := range []string{"chat.*", "chat.>"} {
				r.send(`{"op":"publish","id":"p","topic":"` + topic + `","data":1}`)
				errCode(t, h.seen, r, "p", wire.CodeInvalidName)
			}
			r.alive()
		}},
		{name: "publish_to_unexposed_topics", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			for i, f := range []string{
				`{"op":"publish","id":"f0","topic":"admin.x","data":1}`,
				`{"op":"publish","id":"f1","topic":"chat.secret","data":1}`,
				`{"op":"publish","id":"f2","topic":"chat.bystander","data":1,"to":["secret"]}`,
				`{"op":"publish","id":"f3","topic":"chat.bystander","data":1,"except":["secret"]}`,
				`{"op":"publish","id":"f4","topic":"rpc.add","data":[1,2]}`,
				`{"op":"request","id":"f5","topic":"chat.bystander","data":1}`,
				`{"op":"subscribe","id":"f6","sub":"a","pattern":"admin.>"}`,
			} {
				r.send(f)
				errCode(t, h.seen, r, fmt.Sprintf("f%d", i), wire.CodeForbidden)
			}
			r.alive()
		}},
		{name: "join_forbidden_rooms", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			for i, f := range []string{
				`{"op":"join","id":"j0","rooms":["secret"]}`,
				`{"op":"join","id":"j1","rooms":["vault"]}`,
				`{"op":"join","id":"j2","rooms":["lobby","secret"]}`,
				`{"op":"presence","id":"j3","room":"quiet"}`,
				`{"op":"presence","id":"j4","room":"secret","watch":true}`,
			} {
				r.send(f)
				errCode(t, h.seen, r, fmt.Sprintf("j%d", i), wire.CodeForbidden)
			}
			// A join with one forbidden room joins none.
			r.send(`{"op":"presence","id":"p","room":"lobby"}`)
			if p := answerOp(t, r, "p", wire.OpPresence); len(p.Members) != 0 {
				t.Fatalf("lobby members %+v, want none", p.Members)
			}
		}},

		// ---- limits
		{name: "frame_over_limit", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			big := strings.Repeat("x", 70<<10)
			r.send(`{"op":"publish","id":"big","topic":"chat.bystander","data":"` + big + `"}`)
			errCode(t, h.seen, r, "big", wire.CodeTooLarge)
			r.send(`[{"op":"publish","id":"big2","topic":"chat.bystander","data":"` + big + `"},{"op":"ping","id":"p"}]`)
			errCode(t, h.seen, r, "big2", wire.CodeTooLarge)
			answerOp(t, r, "p", wire.OpPong)
			r.alive()
		}},
		{name: "message_over_limit", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			r.write(websocket.TextMessage, `{"op":"ping","data":"`+strings.Repeat("y", 300<<10)+`"}`)
			closeCode(t, h.seen, r, websocket.CloseMessageTooBig)
		}},
		{name: "flood_over_rate_limit", run: func(t *testing.T, h *hostile) {
			// More messages than the burst (2000), as fast as the socket
			// takes them.
			r, _ := h.hello("mallory")
			for range 6000 {
				if !r.write(websocket.TextMessage, `{"op":"ping"}`) {
					break
				}
			}
			errNoID(t, h.seen, r, wire.CodeRateLimited)
			closeCode(t, h.seen, r, wire.CloseBadFrames)
		}},
		{name: "batch_over_rate_limit", run: func(t *testing.T, h *hostile) {
			// One message with more frames than the burst: they count as
			// if they came one by one.
			r, _ := h.hello("mallory")
			r.write(websocket.TextMessage, "["+strings.Repeat(`{"op":"ping"},`, 5999)+`{"op":"ping"}]`)
			errNoID(t, h.seen, r, wire.CodeRateLimited)
			closeCode(t, h.seen, r, wire.CloseBadFrames)
		}},
		{name: "bad_frame_flood", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			for range 30 {
				if !r.write(websocket.TextMessage, `{"op":"fly"}`) {
					break
				}
			}
			errNoID(t, h.seen, r, wire.CodeUnknownOp)
			closeCode(t, h.seen, r, wire.CloseBadFrames)
		}},
		{name: "thousands_of_subscriptions", run: func(t *testing.T, h *hostile) {
			r, w := h.hello("mallory")
			var b strings.Builder
			b.WriteString("[")
			for i := range 1000 {
				if i > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, `{"op":"subscribe","id":"s%d","sub":"s%d","pattern":"chat.t%d","volatile":true}`, i, i, i)
			}
			r.write(websocket.TextMessage, b.String()+"]")
			for i := range 64 {
				answerOp(t, r, fmt.Sprintf("s%d", i), wire.OpSubscribed)
			}
			errCode(t, h.seen, r, "s64", wire.CodeLimit)
			closeCode(t, h.seen, r, wire.CloseBadFrames) // a limit is a strike
			if info, ok := sessionInfo(t, h.br, w.Session); !ok || info.Subscriptions != 64 {
				t.Fatalf("session %+v, want 64 subscriptions", info)
			}
		}},
		{name: "rooms_over_limit", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			rooms := make([]string, 65)
			for i := range rooms {
				rooms[i] = fmt.Sprintf("r.%d", i)
			}
			r.send(jsonFrame(t, map[string]any{"op": "join", "id": "all", "rooms": rooms}))
			errCode(t, h.seen, r, "all", wire.CodeLimit)
			r.send(`{"op":"presence","id":"p","room":"r.0"}`)
			if p := answerOp(t, r, "p", wire.OpPresence); len(p.Members) != 0 {
				t.Fatalf("r.0 members %+v, want none", p.Members)
			}
			var b strings.Builder
			b.WriteString("[")
			for i := range 70 {
				if i > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, `{"op":"join","id":"j%d","rooms":["r.%d"]},{"op":"presence","id":"w%d","room":"r.%d","watch":true}`, i, i, i, i)
			}
			r.send(b.String() + "]")
			for i := range 70 {
				if i < 64 {
					answerOp(t, r, fmt.Sprintf("j%d", i), wire.OpOK)
					answerOp(t, r, fmt.Sprintf("w%d", i), wire.OpPresence)
				} else {
					errCode(t, h.seen, r, fmt.Sprintf("j%d", i), wire.CodeLimit)
					errCode(t, h.seen, r, fmt.Sprintf("w%d", i), wire.CodeLimit)
				}
			}
			r.alive()
		}},
		{name: "requests_over_limit", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			var b strings.Builder
			b.WriteString("[")
			for i := range 20 {
				if i > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, `{"op":"request","id":"q%d","topic":"rpc.slow","data":1,"timeout":300}`, i)
			}
			r.send(b.String() + "]")
			for i := range 20 {
				want := wire.CodeTimeout
				if i >= 16 {
					want = wire.CodeLimit
				}
				errCode(t, h.seen, r, fmt.Sprintf("q%d", i), want)
			}
			r.send(`{"op":"request","id":"ok","topic":"rpc.add","data":[1,1]}`)
			answerOp(t, r, "ok", wire.OpReply)
		}},
		{name: "topic_flood", run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			limited := -1
			for i := range hostileMaxTopics + 20 {
				id := fmt.Sprintf("t%d", i)
				r.send(fmt.Sprintf(`{"op":"publish","id":%q,"topic":"chat.flood.%d","data":%d}`, id, i, i))
				if f := r.answer(id); f.Op == wire.OpError {
					if f.Code != wire.CodeLimit {
						t.Fatalf("publish %d to a new topic: %+v, want ok or limit", i, f)
					}
					h.seen.add(wire.CodeLimit)
					limited = i
					break
				}
			}
			if limited < 0 {
				t.Fatalf("%d new topics and no limit", hostileMaxTopics+20)
			}
			r.send(`{"op":"publish","id":"again","topic":"chat.flood.0","data":0}`)
			if f := r.answer("again"); f.Op == wire.OpError {
				t.Fatalf("publishing to a topic that exists after the limit: %+v", f)
			}
			if n := len(h.bus.Stats().Topics); n > hostileMaxTopics {
				t.Fatalf("the bus holds %d topics, more than its bound %d", n, hostileMaxTopics)
			}
		}},
		{name: "huge_headers_map", publishes: true, run: func(t *testing.T, h *hostile) {
			r, _ := h.hello("mallory")
			headers := func(n int) map[string]string {
				m := make(map[string]string, n)
				for i := range n {
					m[fmt.Sprintf("h%05d", i)] = "v"
				}
				return m
			}
			// Over the frame limit: refused.
			r.send(jsonFrame(t, map[string]any{"op": "publish", "id": "big", "topic": "chat.bystander", "data": 1, "headers": headers(6000)}))
			errCode(t, h.seen, r, "big", wire.CodeTooLarge)
			// Under it: a message like any other, delivered whole.
			r.send(jsonFrame(t, map[string]any{"op": "publish", "id": "ok", "topic": "chat.bystander", "data": "many", "headers": headers(4000)}))
			answerOp(t, r, "ok", wire.OpPuback)
			m := h.in.wait(t, 1)[0]
			if string(m.Data) != `"many"` || len(m.Headers) != 4002 || m.Headers[bridge.HeaderUser] != "mallory" {
				t.Fatalf("the bystander got %s with %d headers", m.Data, len(m.Headers))
			}
			r.alive()
		}},
	}
}

// TestHostileInputDocs checks the table of docs/reliability.md's "Hostile
// input" section against TestHostileInput: every test it names is a
// subtest, and every subtest is in it.
func TestHostileInputDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/reliability.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Hostile input\n")
	if !ok {
		t.Fatal(`docs/reliability.md has no "## Hostile input" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	cases := map[string]bool{}
	for _, tc := range hostileCases() {
		cases[tc.name] = true
	}
	named := map[string]bool{}
	re := regexp.MustCompile("`TestHostileInput/([^`]+)`")
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		for _, m := range re.FindAllStringSubmatch(line, -1) {
			named[m[1]] = true
			if !cases[m[1]] {
				t.Errorf("docs/reliability.md names TestHostileInput/%s, which is not a subtest", m[1])
			}
		}
	}
	for name := range cases {
		if !named[name] {
			t.Errorf("TestHostileInput/%s is missing from the table in docs/reliability.md", name)
		}
	}
}
