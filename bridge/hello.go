package bridge

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/courierbus/courier/bridge/internal/wire"
)

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
	if resumed {
		b.announce(s)
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
