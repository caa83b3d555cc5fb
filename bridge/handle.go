package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/olahol/melody"

	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
)

// onMessage handles one WebSocket message: a frame or an array of frames.
// It runs on the connection's read loop. Client input never panics the
// process: the handlers check what they use, and a panic that escapes them
// anyway closes this connection only.
func (b *Bridge) onMessage(ms *melody.Session, msg []byte) {
	c := b.connOf(ms)
	if c == nil || c.isKilled() {
		return
	}
	if c.sess.Load() == nil {
		// The hello is the deepest work a connection does. Do it on a
		// goroutine of its own, so that the read loop's stack, which
		// lives as long as the connection, does not keep its size.
		done := make(chan struct{})
		go func() {
			defer close(done)
			b.handleMessage(c, msg)
		}()
		<-done
		return
	}
	b.handleMessage(c, msg)
}

func (b *Bridge) handleMessage(c *conn, msg []byte) {
	defer func() {
		if v := recover(); v != nil {
			b.log.Error("bridge: panic handling a frame", "panic", v, "stack", string(debug.Stack()))
			c.kill(wire.CloseInternal, "internal")
		}
	}()
	// RFC 8259 JSON is UTF-8, and every receiver of the text frames this
	// message may reach (a browser fails the WebSocket on invalid UTF-8)
	// must be able to read it: refuse it here, once, rather than pass it on.
	var raws [][]byte
	err := errNotUTF8
	if utf8.Valid(msg) {
		raws, err = wire.Split(msg)
	}
	if err != nil {
		b.stats.framesIn.Add(1)
		if !c.allowFrame() {
			c.fail("", wire.CodeRateLimited, "rate limit")
			return
		}
		c.fail("", wire.CodeBadJSON, errText(err))
		return
	}
	b.stats.framesIn.Add(uint64(len(raws)))
	for _, raw := range raws {
		if c.isKilled() {
			return
		}
		if len(raw) > b.cfg.frameLimit {
			if c.allowFrame() {
				c.fail(wire.PeekID(raw), wire.CodeTooLarge, fmt.Sprintf("frame of %d bytes, limit %d", len(raw), b.cfg.frameLimit))
			} else {
				c.fail(wire.PeekID(raw), wire.CodeRateLimited, fmt.Sprintf("more than %g frames per second", b.cfg.rate))
			}
			continue
		}
		f, err := wire.Parse(raw)
		// Acks and nacks answer deliveries: as many as were sent pass
		// without spending the frame rate.
		free := err == nil && (f.Op == wire.OpAck || f.Op == wire.OpNack) && c.acks.Add(-1) >= 0
		if !free && !c.allowFrame() {
			id := f.ID
			if err != nil {
				id = wire.PeekID(raw)
			}
			c.fail(id, wire.CodeRateLimited, fmt.Sprintf("more than %g frames per second", b.cfg.rate))
			continue
		}
		if err != nil {
			var we *wire.Error
			if errors.As(err, &we) {
				c.fail(we.ID, we.Code, errText(we.Err))
			} else {
				c.fail("", wire.CodeBadJSON, errText(err))
			}
			continue
		}
		if len(f.ID) > maxIDLen {
			c.fail("", wire.CodeBadFrame, fmt.Sprintf("id of %d bytes, limit %d", len(f.ID), maxIDLen))
			continue
		}
		c.handle(&f)
	}
}

// Lengths of the client's own ids (docs/protocol.md, section 2).
const (
	maxIDLen  = 64  // request ids
	maxPIDLen = 255 // publisher ids, kept for the de-duplication window
)

// maxWait is the longest ack_wait and nack delay.
const maxWait = 10 * time.Minute

var errNotUTF8 = errors.New("not UTF-8")

// millis converts a duration a client gave in milliseconds, clamped to
// [lo, hi] before it is multiplied, so that no number overflows into a
// negative or tiny duration.
func millis(ms int64, lo, hi time.Duration) time.Duration {
	return time.Duration(min(max(ms, lo.Milliseconds()), hi.Milliseconds())) * time.Millisecond
}

func errText(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// fail sends an error frame and counts a strike when the client caused it.
// An id longer than the protocol allows is not echoed.
func (c *conn) fail(id, code, msg string) {
	if len(id) > maxIDLen {
		id = ""
	}
	f := wire.Frame{Op: wire.OpError, ID: id, Code: code, Message: msg}
	if frame, err := wire.Encode(&f); err == nil {
		// Counted before it can reach the client, which may read the
		// counters as soon as it has the frame; taken back if not sent.
		c.b.stats.errorFrame(code, 1)
		if !c.sendFrame(frame) {
			c.b.stats.errorFrame(code, ^uint64(0))
		}
	}
	if wire.Strike(code) && !c.strike() {
		c.b.stats.badFrames.Add(1)
		c.b.log.Info("bridge: too many bad frames, disconnecting", "code", code)
		c.closeAfter(wire.CloseBadFrames, "too many bad frames")
	}
}

// reply sends a positive answer.
func (c *conn) reply(f *wire.Frame) {
	frame, err := wire.Encode(f)
	if err != nil {
		c.b.log.Error("bridge: encode frame", "op", f.Op, "err", err)
		return
	}
	c.sendFrame(frame)
}

func (c *conn) ok(id string) {
	if id != "" {
		c.reply(&wire.Frame{Op: wire.OpOK, ID: id})
	}
}

func (c *conn) handle(f *wire.Frame) {
	if f.Op == wire.OpHello {
		c.handleHello(f)
		return
	}
	s := c.sess.Load()
	if s == nil {
		c.fail(f.ID, wire.CodeHelloRequired, "the first frame must be hello")
		return
	}
	switch f.Op {
	case wire.OpSubscribe:
		c.subscribe(s, f)
	case wire.OpUnsubscribe:
		c.unsubscribe(s, f)
	case wire.OpAck, wire.OpNack:
		c.ack(s, f)
	case wire.OpPublish:
		c.publish(s, f)
	case wire.OpJoin, wire.OpLeave:
		c.join(s, f)
	case wire.OpPresence:
		c.presence(s, f)
	case wire.OpRequest:
		c.request(s, f)
	case wire.OpReply:
		c.replied(s, f)
	case wire.OpPing:
		c.reply(&wire.Frame{Op: wire.OpPong, ID: f.ID})
	case wire.OpBye:
		s.end()
		c.closeAfter(wire.CloseNormal, "bye")
	default:
		c.fail(f.ID, wire.CodeUnknownOp, fmt.Sprintf("unknown op %q", f.Op))
	}
}

// ---- hello

func (c *conn) handleHello(f *wire.Frame) {
	b := c.b
	if c.sess.Load() != nil {
		c.fail(f.ID, wire.CodeBadFrame, "second hello")
		return
	}
	if f.V != wire.Version {
		c.fail(f.ID, wire.CodeVersion, fmt.Sprintf("protocol version %d not supported; supported: %d", f.V, wire.Version))
		c.closeAfter(wire.CloseVersion, "version")
		return
	}
	ident := c.ident
	if b.cfg.helloAuth != nil {
		var err error
		if ident, err = b.callHelloAuth(ident, f.Auth); err != nil {
			c.fail(f.ID, wire.CodeUnauthorized, errText(err))
			c.closeAfter(wire.CloseUnauthorized, "unauthorized")
			return
		}
	}
	var s *session
	var lost map[*csub]bool
	var adopt string // a valid token of a session another node of the cluster made
	if f.Resume != "" {
		if sid, ok := b.checkToken(f.Resume, ident.ID); ok {
			if s = b.session(sid); s != nil && s.ident.ID == ident.ID {
				lost = s.uncovered()
			} else {
				if s == nil && b.cfg.sessionKey != nil {
					adopt = sid
				}
				s = nil
			}
		}
	}
	var old *conn
	if s != nil {
		s.mu.Lock()
		if s.ended {
			s.mu.Unlock()
			s = nil
		}
	}
	resumed := s != nil
	if f.Resume != "" && !resumed {
		b.stats.resumesFailed.Add(1)
	}
	if !b.admit(c, ident.ID, resumed && s.c != nil) {
		if resumed {
			s.mu.Unlock()
		}
		c.fail(f.ID, wire.CodeLimit, fmt.Sprintf("at most %d connections per identity", b.cfg.maxConns))
		c.closeAfter(wire.CloseTooMany, "too many connections")
		return
	}
	if !resumed {
		var err error
		if s, err = b.newSession(c, ident, adopt); err != nil {
			c.fail(f.ID, codeOf(err, wire.CodeInternal), errText(err))
			c.closeAfter(wire.CloseInternal, "internal")
			return
		}
		s.mu.Lock()
	}
	if s.ended {
		// Closed between creation and here.
		s.mu.Unlock()
		c.closeAfter(wire.CloseGoingAway, "going away")
		return
	}
	old = s.attach(c)
	w := wire.Frame{
		Op: wire.OpWelcome, ID: f.ID, V: wire.Version, Session: s.id, Resume: s.token,
		Heartbeat: b.cfg.heartbeat.Milliseconds(), Resumed: wire.Bool(resumed),
		Limits: &wire.Limits{
			Frame: b.cfg.frameLimit, Message: b.cfg.messageLimit, Subs: b.cfg.maxSubs,
			Rate: b.cfg.rate, Burst: b.cfg.burst, Inflight: b.cfg.maxInflight, Outbound: b.cfg.outbound,
		},
	}
	if resumed {
		for _, cs := range s.subs {
			w.Subs = append(w.Subs, wire.SubState{Sub: cs.id, Pattern: cs.pattern, Recovered: !lost[cs]})
		}
		w.Rooms = b.clientNames(s.member.Rooms())
		s.resumes++
		b.stats.resumed.Add(1)
		if len(lost) > 0 {
			b.stats.resumesUnrecovered.Add(1)
		}
	}
	c.reply(&w)
	if resumed {
		s.resend()
		s.wantCatchup()
	}
	s.mu.Unlock()
	if old != nil && old != c {
		old.kill(wire.CloseReplaced, "replaced")
	}
}

// uncovered returns the subscriptions whose history no longer holds what
// they are owed.
func (s *session) uncovered() map[*csub]bool {
	type check struct {
		cs          *csub
		topic       string
		epoch, from uint64
	}
	var checks []check
	s.mu.Lock()
	for _, cs := range s.subs {
		for _, st := range cs.streams {
			if !st.synced {
				checks = append(checks, check{cs, st.topic, st.epoch, st.next})
			}
		}
	}
	s.mu.Unlock()
	var lost map[*csub]bool
	for _, ch := range checks {
		bd, err := s.b.bus.Bounds(s.b.ctx, ch.topic)
		if err == nil && (ch.from < bd.First || bd.Epoch != ch.epoch) {
			if lost == nil {
				lost = make(map[*csub]bool)
			}
			lost[ch.cs] = true
		}
	}
	return lost
}

func (b *Bridge) callHelloAuth(id Identity, auth json.RawMessage) (out Identity, err error) {
	defer func() {
		if v := recover(); v != nil {
			b.log.Error("bridge: HelloAuth hook panicked", "panic", v)
			err = fmt.Errorf("%w: hook panicked", ErrUnauthorized)
		}
	}()
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.hookTimeout)
	defer cancel()
	return b.cfg.helloAuth(ctx, id, auth)
}

// allowed checks that name is exposed for action and passes the host's
// Authorize hook.
func (c *conn) allowed(s *session, action Action, name string) error {
	b := c.b
	if !b.exposed(action, name) {
		return fmt.Errorf("%w: %s %q is not exposed to clients", ErrForbidden, action, name)
	}
	if b.cfg.authorize == nil {
		return nil
	}
	return b.callAuthorize(s, action, name)
}

func (b *Bridge) callAuthorize(s *session, action Action, name string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			b.log.Error("bridge: Authorize hook panicked", "panic", v)
			err = fmt.Errorf("%w: hook panicked", ErrForbidden)
		}
	}()
	ctx, cancel := context.WithTimeout(context.WithValue(b.ctx, sessionKey{}, s.id), b.cfg.hookTimeout)
	defer cancel()
	if err := b.cfg.authorize(ctx, s.ident, action, name); err != nil {
		return fmt.Errorf("%w: %s %q: %v", ErrForbidden, action, name, err)
	}
	return nil
}

// codeOf maps an error to a protocol error code; def is the code for
// errors it does not know.
func codeOf(err error, def string) string {
	var he *bus.HandlerError
	switch {
	case errors.Is(err, ErrForbidden):
		return wire.CodeForbidden
	case errors.Is(err, bus.ErrInvalidTopic):
		return wire.CodeInvalidName
	case errors.Is(err, bus.ErrTypeMismatch):
		return wire.CodeTypeMismatch
	case errors.Is(err, bus.ErrNoHandler):
		return wire.CodeNoHandler
	case errors.Is(err, bus.ErrTooManyTopics):
		return wire.CodeLimit
	case errors.Is(err, context.DeadlineExceeded):
		return wire.CodeTimeout
	case errors.Is(err, bus.ErrClosed), errors.Is(err, ErrClosed), errors.Is(err, bus.ErrMemberRemoved),
		errors.Is(err, context.Canceled):
		return wire.CodeUnavailable
	case errors.As(err, &he):
		return wire.CodeFailed
	}
	return def
}

// ---- names

// validSubID reports whether id is a valid subscription id.
func validSubID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.:-", c) >= 0) {
			return false
		}
	}
	return true
}

// checkTopic validates a client topic name (no wildcards, not the bus's).
func checkTopic(name string) error {
	if strings.HasPrefix(name, "$") {
		return fmt.Errorf("%w: %q is reserved", bus.ErrInvalidTopic, name)
	}
	return bus.ValidateTopic(name)
}

// ---- subscriptions

func (c *conn) subscribe(s *session, f *wire.Frame) {
	b := c.b
	if !validSubID(f.Sub) {
		c.fail(f.ID, wire.CodeInvalidName, fmt.Sprintf("subscription id %q: 1 to 64 bytes of [A-Za-z0-9_.:-]", f.Sub))
		return
	}
	if f.Pattern == "" {
		c.fail(f.ID, wire.CodeBadFrame, `subscribe needs "pattern"`)
		return
	}
	if err := bus.ValidatePattern(f.Pattern); err != nil || strings.HasPrefix(f.Pattern, "$") {
		c.fail(f.ID, wire.CodeInvalidName, fmt.Sprintf("pattern %q", f.Pattern))
		return
	}
	exact := bus.ValidateTopic(f.Pattern) == nil
	start := f.Start
	switch start {
	case "":
		start = wire.StartNew
	case wire.StartNew, wire.StartFirst, wire.StartSeq, wire.StartAfter:
	default:
		c.fail(f.ID, wire.CodeBadFrame, fmt.Sprintf("start %q: want new, first, seq or after", start))
		return
	}
	if start != wire.StartNew && !exact {
		c.fail(f.ID, wire.CodeBadFrame, "start positions need an exact topic, not a pattern")
		return
	}
	if f.MaxInflight < 0 || f.AckWait < 0 || f.MaxDeliver < 0 {
		c.fail(f.ID, wire.CodeBadFrame, "max_inflight, ack_wait and max_deliver must not be negative")
		return
	}
	if err := c.allowed(s, Subscribe, f.Pattern); err != nil {
		c.fail(f.ID, wire.CodeForbidden, errText(err))
		return
	}
	window := 256
	if f.MaxInflight > 0 {
		window = f.MaxInflight
	}
	window = min(window, b.cfg.maxInflight)
	ackWait := 30 * time.Second
	if f.AckWait > 0 {
		ackWait = millis(f.AckWait, 100*time.Millisecond, maxWait)
	}
	cs := &csub{
		s: s, id: f.Sub, quoted: wire.AppendString(nil, f.Sub), pattern: f.Pattern, exact: exact,
		volatile: f.Volatile, window: window, ackWait: ackWait, maxDeliver: f.MaxDeliver,
	}
	busPat := b.busName(f.Pattern)

	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.ended:
		c.fail(f.ID, wire.CodeUnavailable, "session ended")
		return
	case s.subs[f.Sub] != nil:
		c.fail(f.ID, wire.CodeConflict, fmt.Sprintf("subscription %q exists", f.Sub))
		return
	case len(s.subs) >= b.cfg.maxSubs:
		c.fail(f.ID, wire.CodeLimit, fmt.Sprintf("at most %d subscriptions", b.cfg.maxSubs))
		return
	}
	if _, err := b.acquire(busPat, cs); err != nil {
		c.fail(f.ID, codeOf(err, wire.CodeInternal), errText(err))
		return
	}
	ans := wire.Frame{Op: wire.OpSubscribed, ID: f.ID, Sub: f.Sub}
	var st *stream
	recovered := true
	if exact {
		pos, err := b.bus.Position(b.ctx, busPat)
		if err == nil {
			st, recovered, err = b.startStream(busPat, pos, start, f)
		}
		if err != nil {
			s.mu.Unlock()
			b.release(cs)
			s.mu.Lock()
			c.fail(f.ID, codeOf(err, wire.CodeInternal), errText(err))
			return
		}
		cs.streams = map[string]*stream{busPat: st}
		ans.Epoch, ans.Seq = wire.Epoch(pos.Epoch), pos.Seq
		if start != wire.StartNew {
			ans.Recovered = wire.Bool(recovered)
		}
	}
	if s.subs == nil {
		s.subs = make(map[string]*csub)
	}
	s.subs[f.Sub] = cs
	if f.ID != "" {
		c.reply(&ans)
	}
	if st != nil && !recovered {
		s.resync(cs, st, st.next)
	}
	if st != nil && !st.synced {
		s.wantCatchup()
	}
}

// startStream places a new exact subscription's stream where the client
// asked; recovered is false when history no longer holds that place.
func (b *Bridge) startStream(topic string, pos bus.Position, start string, f *wire.Frame) (*stream, bool, error) {
	st := &stream{topic: topic, epoch: pos.Epoch, next: pos.Seq + 1, synced: true}
	recovered := true
	from := uint64(0)
	switch start {
	case wire.StartFirst:
		from = 1
	case wire.StartSeq:
		from = max(f.Seq, 1)
	case wire.StartAfter:
		if uint64(f.Epoch) == pos.Epoch {
			from = f.Seq + 1
		} else {
			from, recovered = 1, false
		}
	}
	if from != 0 {
		first, err := b.firstHeld(topic, from)
		if err != nil {
			return nil, false, err
		}
		if first != from && start != wire.StartFirst {
			recovered = false
		}
		st.next = first
	}
	if st.next <= pos.Seq {
		st.synced, st.known = false, pos.Seq
	}
	return st, recovered, nil
}

func (c *conn) unsubscribe(s *session, f *wire.Frame) {
	s.mu.Lock()
	cs := s.subs[f.Sub]
	if cs != nil {
		delete(s.subs, f.Sub)
		cs.ended = true
		cs.inflight, cs.redo = nil, nil
	}
	s.mu.Unlock()
	if cs == nil {
		c.fail(f.ID, wire.CodeNotFound, fmt.Sprintf("no subscription %q", f.Sub))
		return
	}
	c.b.release(cs)
	c.ok(f.ID)
}

func (c *conn) ack(s *session, f *wire.Frame) {
	if f.N == 0 && (f.Op == wire.OpNack || f.Upto == 0) {
		c.fail(f.ID, wire.CodeBadFrame, f.Op+` needs "n"`+map[bool]string{true: "", false: ` or "upto"`}[f.Op == wire.OpNack])
		return
	}
	s.mu.Lock()
	cs := s.subs[f.Sub]
	if cs != nil {
		if f.Op == wire.OpAck {
			s.ack(cs, f.N, f.Upto)
		} else {
			s.nack(cs, f.N, millis(f.Delay, 0, maxWait))
		}
	}
	s.mu.Unlock()
	if cs == nil {
		c.fail(f.ID, wire.CodeNotFound, fmt.Sprintf("no subscription %q", f.Sub))
		return
	}
	c.ok(f.ID)
}

// ---- publish

func (c *conn) publish(s *session, f *wire.Frame) {
	b := c.b
	if err := checkTopic(f.Topic); err != nil {
		c.fail(f.ID, wire.CodeInvalidName, errText(err))
		return
	}
	if len(f.Data) == 0 {
		c.fail(f.ID, wire.CodeBadFrame, `publish needs "data"`)
		return
	}
	if len(f.PID) > maxPIDLen {
		c.fail(f.ID, wire.CodeBadFrame, fmt.Sprintf("pid of %d bytes, limit %d", len(f.PID), maxPIDLen))
		return
	}
	if err := c.allowed(s, Publish, f.Topic); err != nil {
		c.fail(f.ID, wire.CodeForbidden, errText(err))
		return
	}
	opts := make([]bus.PublishOption, 0, 6)
	for _, list := range [][]string{f.To, f.Except} {
		for _, r := range list {
			if err := checkTopic(r); err != nil {
				c.fail(f.ID, wire.CodeInvalidName, fmt.Sprintf("room %q", r))
				return
			}
			if !b.roomExposed(r) {
				c.fail(f.ID, wire.CodeForbidden, fmt.Sprintf("room %q is not exposed to clients", r))
				return
			}
		}
	}
	if len(f.To) > 0 {
		opts = append(opts, bus.To(b.busNames(f.To)...))
	}
	if len(f.Except) > 0 {
		opts = append(opts, bus.Except(b.busNames(f.Except)...))
	}
	if f.ExceptSelf {
		opts = append(opts, bus.ExceptMember(s.id))
	}
	if f.Volatile {
		opts = append(opts, bus.Volatile())
	}
	if f.PID != "" {
		scope := "s:" + s.id
		if s.ident.ID != "" {
			scope = "u:" + s.ident.ID
		}
		opts = append(opts, bus.PublisherID(scope+":"+f.PID))
	}
	opts = append(opts, bus.Headers(publisherHeaders(s, f.Headers)))
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.publishTimeout)
	topic := b.busName(f.Topic)
	seq, err := b.bus.PublishRaw(ctx, topic, f.Data, opts...)
	cancel()
	if err != nil {
		c.fail(f.ID, codeOf(err, wire.CodeInternal), errText(err))
		return
	}
	if f.ID == "" {
		return
	}
	ans := wire.Frame{Op: wire.OpPuback, ID: f.ID, Seq: seq}
	if seq != 0 {
		if pos, err := b.bus.Position(b.ctx, topic); err == nil {
			ans.Epoch = wire.Epoch(pos.Epoch)
		}
	}
	c.reply(&ans)
}

// publisherHeaders returns a client's headers with the server's own, which
// say who published: the client cannot set or forge them.
func publisherHeaders(s *session, client map[string]string) map[string]string {
	h := make(map[string]string, len(client)+2)
	for k, v := range client {
		if len(k) < len(wire.HeaderPrefix) || !strings.EqualFold(k[:len(wire.HeaderPrefix)], wire.HeaderPrefix) {
			h[k] = v
		}
	}
	h[wire.HeaderSession] = s.id
	if s.ident.ID != "" {
		h[wire.HeaderUser] = s.ident.ID
	}
	return h
}

func (b *Bridge) busNames(names []string) []string {
	if b.ns == "" {
		return names
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = b.ns + n
	}
	return out
}

// ---- rooms

func (c *conn) join(s *session, f *wire.Frame) {
	b := c.b
	if len(f.Rooms) == 0 {
		c.fail(f.ID, wire.CodeBadFrame, f.Op+` needs "rooms"`)
		return
	}
	for _, r := range f.Rooms {
		if err := checkTopic(r); err != nil {
			c.fail(f.ID, wire.CodeInvalidName, fmt.Sprintf("room %q", r))
			return
		}
		if f.Op == wire.OpJoin {
			if err := c.allowed(s, Join, r); err != nil {
				c.fail(f.ID, wire.CodeForbidden, errText(err))
				return
			}
		}
	}
	if f.Op == wire.OpJoin && len(s.member.Rooms())+len(f.Rooms) > b.cfg.maxRooms {
		c.fail(f.ID, wire.CodeLimit, fmt.Sprintf("at most %d rooms", b.cfg.maxRooms))
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.publishTimeout)
	defer cancel()
	var err error
	if f.Op == wire.OpJoin {
		err = s.member.Join(ctx, b.busNames(f.Rooms)...)
	} else {
		err = s.member.Leave(ctx, b.busNames(f.Rooms)...)
	}
	if err != nil {
		c.fail(f.ID, codeOf(err, wire.CodeInternal), errText(err))
		return
	}
	c.ok(f.ID)
}

func (c *conn) presence(s *session, f *wire.Frame) {
	b := c.b
	if err := checkTopic(f.Room); err != nil {
		c.fail(f.ID, wire.CodeInvalidName, fmt.Sprintf("room %q", f.Room))
		return
	}
	if err := c.allowed(s, Presence, f.Room); err != nil {
		c.fail(f.ID, wire.CodeForbidden, errText(err))
		return
	}
	room := b.busName(f.Room)
	if f.Watch != nil {
		var drop *watch
		s.mu.Lock()
		w := s.watching[room]
		switch {
		case s.ended:
		case *f.Watch && w == nil && len(s.watching) >= b.cfg.maxRooms:
			s.mu.Unlock()
			c.fail(f.ID, wire.CodeLimit, fmt.Sprintf("at most %d presence watches", b.cfg.maxRooms))
			return
		case *f.Watch && w == nil:
			w, err := b.watchRoom(room, s)
			if err != nil {
				s.mu.Unlock()
				c.fail(f.ID, codeOf(err, wire.CodeInternal), errText(err))
				return
			}
			if s.watching == nil {
				s.watching = make(map[string]*watch)
			}
			s.watching[room] = w
		case !*f.Watch && w != nil:
			delete(s.watching, room)
			drop = w
		}
		s.mu.Unlock()
		if drop != nil {
			b.unwatch(drop, s)
		}
	}
	ans := wire.Frame{Op: wire.OpPresence, ID: f.ID, Room: f.Room}
	for _, id := range b.bus.RoomMembers(room) {
		m := wire.Member{Member: id, User: b.bus.MemberInfo(id)}
		ans.Members = append(ans.Members, m)
	}
	c.reply(&ans)
}

// ---- requests

func (c *conn) request(s *session, f *wire.Frame) {
	b := c.b
	if f.ID == "" {
		c.fail("", wire.CodeBadFrame, `request needs "id"`)
		return
	}
	if err := checkTopic(f.Topic); err != nil {
		c.fail(f.ID, wire.CodeInvalidName, errText(err))
		return
	}
	if err := c.allowed(s, Request, f.Topic); err != nil {
		c.fail(f.ID, wire.CodeForbidden, errText(err))
		return
	}
	timeout := b.cfg.requestTimeout
	if f.Timeout > 0 {
		timeout = millis(f.Timeout, 0, timeout)
	}
	data := f.Data
	if len(data) == 0 {
		data = []byte("null")
	}
	s.mu.Lock()
	full := s.nreqs >= b.cfg.maxRequests
	if !full {
		s.nreqs++
	}
	s.mu.Unlock()
	if full {
		c.fail(f.ID, wire.CodeLimit, fmt.Sprintf("at most %d requests in progress", b.cfg.maxRequests))
		return
	}
	if !b.enter() {
		s.mu.Lock()
		s.nreqs--
		s.mu.Unlock()
		c.fail(f.ID, wire.CodeUnavailable, "bridge closing")
		return
	}
	id, topic := f.ID, b.busName(f.Topic)
	go func() {
		defer b.wg.Done()
		ctx, cancel := context.WithTimeout(b.ctx, timeout)
		resp, err := b.bus.RequestRaw(ctx, topic, data)
		cancel()
		s.mu.Lock()
		s.nreqs--
		s.mu.Unlock()
		if err != nil {
			c.fail(id, codeOf(err, wire.CodeFailed), errText(err))
			return
		}
		c.reply(&wire.Frame{Op: wire.OpReply, ID: id, Data: resp})
	}()
}

// replied takes a client's answer to a server request.
func (c *conn) replied(s *session, f *wire.Frame) {
	s.mu.Lock()
	ch := s.sreqs[f.ID]
	delete(s.sreqs, f.ID)
	s.mu.Unlock()
	if ch == nil {
		c.fail(f.ID, wire.CodeNotFound, fmt.Sprintf("no server request %q", f.ID))
		return
	}
	ch <- f
}

// Request sends a request to the client of session sessionID (its member
// id) and waits for its reply: the client's handler for topic answers. data
// must be JSON. It returns [ErrNoSession] or [ErrNotConnected] when the
// client cannot be asked, a *[ReplyError] when the client answered with a
// failure, and ctx.Err() when ctx ends first.
func (b *Bridge) Request(ctx context.Context, sessionID, topic string, data []byte) ([]byte, error) {
	if b.closing() {
		return nil, ErrClosed
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("%w: request data is not JSON", bus.ErrTypeMismatch)
	}
	s := b.session(sessionID)
	if s == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoSession, sessionID)
	}
	id := fmt.Sprintf("s%d", b.reqSeq.Add(1))
	frame, err := wire.Encode(&wire.Frame{Op: wire.OpRequest, ID: id, Topic: topic, Data: data})
	if err != nil {
		return nil, err
	}
	ch := make(chan *wire.Frame, 1)
	s.mu.Lock()
	switch {
	case s.ended:
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrNoSession, sessionID)
	case s.c == nil:
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrNotConnected, sessionID)
	}
	if s.sreqs == nil {
		s.sreqs = make(map[string]chan *wire.Frame)
	}
	s.sreqs[id] = ch
	sent := s.c.sendFrame(frame)
	if !sent {
		delete(s.sreqs, id)
	}
	s.mu.Unlock()
	if !sent {
		return nil, fmt.Errorf("%w: %q", ErrNotConnected, sessionID)
	}
	select {
	case f, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrNotConnected, sessionID)
		}
		if f.Code != "" {
			return nil, &ReplyError{Code: f.Code, Message: f.Message}
		}
		if len(f.Data) == 0 {
			return []byte("null"), nil
		}
		return f.Data, nil
	case <-ctx.Done():
	case <-b.ctx.Done():
	}
	s.mu.Lock()
	delete(s.sreqs, id)
	s.mu.Unlock()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, ErrClosed
}
