package bridge

import (
	"context"
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
