package bridge

import (
	"context"
	"fmt"

	"github.com/courierbus/courier/bridge/internal/wire"
)

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
		if code, msg := b.setWatch(s, room, *f.Watch); code != "" {
			c.fail(f.ID, code, msg)
			return
		}
	}
	ans := wire.Frame{Op: wire.OpPresence, ID: f.ID, Room: f.Room}
	for _, id := range b.bus.RoomMembers(room) {
		m := wire.Member{Member: id, User: b.bus.MemberInfo(id)}
		if ms := b.session(id); ms != nil {
			ms.mu.Lock()
			m.Away = ms.away
			ms.mu.Unlock()
		}
		ans.Members = append(ans.Members, m)
	}
	c.reply(&ans)
}

// setWatch starts or stops s watching the presence of bus room; it
// returns the error code and message that refuse it, or "". Subscribing
// to the room's events may reach the bus's store or broker: no lock is
// held then, and the commit checks again.
func (b *Bridge) setWatch(s *session, room string, on bool) (code, msg string) {
	s.mu.Lock()
	w := s.watching[room]
	switch {
	case s.ended || on == (w != nil):
		s.mu.Unlock()
		return "", ""
	case !on:
		delete(s.watching, room)
		s.mu.Unlock()
		b.unwatch(w, s)
		return "", ""
	case len(s.watching) >= b.cfg.maxRooms:
		s.mu.Unlock()
		return wire.CodeLimit, fmt.Sprintf("at most %d presence watches", b.cfg.maxRooms)
	}
	s.mu.Unlock()
	w, err := b.watchRoom(room, s)
	if err != nil {
		return codeOf(err, wire.CodeInternal), errText(err)
	}
	s.mu.Lock()
	switch cur := s.watching[room]; {
	case cur == w:
		// Watched meanwhile, from another connection of the session.
		s.mu.Unlock()
		return "", ""
	case s.ended || cur != nil:
		s.mu.Unlock()
		b.unwatch(w, s)
		return "", ""
	case len(s.watching) >= b.cfg.maxRooms:
		s.mu.Unlock()
		b.unwatch(w, s)
		return wire.CodeLimit, fmt.Sprintf("at most %d presence watches", b.cfg.maxRooms)
	}
	if s.watching == nil {
		s.watching = make(map[string]*watch)
	}
	s.watching[room] = w
	s.mu.Unlock()
	return "", ""
}

// announce tells the sessions watching the rooms of s that s is away (its
// connection dropped and it waits for a resume) or back, when that
// changed since they were last told. Caller holds no lock.
func (b *Bridge) announce(s *session) {
	if b.closing() {
		return // every session ends: its members leave
	}
	b.presMu.Lock()
	defer b.presMu.Unlock()
	s.mu.Lock()
	away := s.c == nil
	if s.ended || away == s.away {
		s.mu.Unlock()
		return
	}
	s.away = away
	s.mu.Unlock()
	for _, room := range s.member.Rooms() {
		b.routeMu.Lock()
		w := b.watches[room]
		b.routeMu.Unlock()
		if w == nil {
			continue
		}
		name, _ := b.clientName(room)
		f := wire.Frame{Op: wire.OpPresenceEvent, Room: name, Member: s.id, User: s.ident.ID,
			Joined: wire.Bool(true), Away: wire.Bool(away)}
		if frame, err := wire.Encode(&f); err == nil {
			w.send(frame)
		}
	}
}
