package bridge

import (
	"fmt"
	"strings"
	"time"

	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
)

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
	code, msg := s.roomFor(f.Sub)
	s.mu.Unlock()
	if code != "" {
		c.fail(f.ID, code, msg)
		return
	}

	// Subscribing, and the position of an exact topic, may reach the bus's
	// store or broker (a network round trip in a cluster): no lock is held
	// until the commit below, which checks again. Until then the route
	// only notes what it offers cs (see offer), and catch-up sends it.
	cs.pending = true
	if err := b.acquire(busPat, cs); err != nil {
		c.fail(f.ID, codeOf(err, wire.CodeInternal), errText(err))
		return
	}
	ans := wire.Frame{Op: wire.OpSubscribed, ID: f.ID, Sub: f.Sub}
	var st *stream
	recovered := true
	var err error
	if exact {
		var pos bus.Position
		if pos, err = b.bus.Position(b.ctx, busPat); err == nil {
			st, recovered, err = b.startStream(busPat, pos, start, f)
		}
		ans.Epoch, ans.Seq = wire.Epoch(pos.Epoch), pos.Seq
		if start != wire.StartNew {
			ans.Recovered = wire.Bool(recovered)
		}
	}

	s.mu.Lock()
	if err != nil {
		code, msg = codeOf(err, wire.CodeInternal), errText(err)
	} else {
		code, msg = s.roomFor(f.Sub)
	}
	if code != "" {
		cs.ended = true
		s.mu.Unlock()
		b.release(cs)
		c.fail(f.ID, code, msg)
		return
	}
	cs.pending = false
	if st != nil {
		if early := cs.streams[busPat]; early != nil && early.known >= st.next {
			st.synced, st.known = false, max(st.known, early.known)
		}
		cs.streams = map[string]*stream{busPat: st}
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
	for _, st := range cs.streams {
		if !st.synced {
			s.wantCatchup()
			break
		}
	}
	s.mu.Unlock()
}

// roomFor returns the error code and message that refuse a new
// subscription with id sub, or "" when the session can take it. Caller
// holds s.mu.
func (s *session) roomFor(sub string) (code, msg string) {
	switch {
	case s.ended:
		return wire.CodeUnavailable, "session ended"
	case s.subs[sub] != nil:
		return wire.CodeConflict, fmt.Sprintf("subscription %q exists", sub)
	case len(s.subs) >= s.b.cfg.maxSubs:
		return wire.CodeLimit, fmt.Sprintf("at most %d subscriptions", s.b.cfg.maxSubs)
	}
	return "", ""
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
