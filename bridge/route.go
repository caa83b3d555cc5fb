package bridge

import (
	"context"
	"slices"
	"sync/atomic"

	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
)

// route is the bridge's one bus subscription for a distinct pattern: it
// fans each message out to the client subscriptions on it, encoding the
// message once. The subscription is [bus.Unfiltered]: it gets every
// message of its topics, those addressed with [bus.To] included, in
// sequence order per topic, and the bridge applies the room filters per
// member with [bus.Message.Reaches].
type route struct {
	b       *Bridge
	pattern string // bus pattern
	sub     *bus.Subscription
	subs    atomic.Pointer[[]*csub] // copy on write, under b.routeMu
}

// acquire returns the route of a bus pattern with cs added, subscribing to
// the bus when it is the first. Caller may hold cs.s.mu.
func (b *Bridge) acquire(pattern string, cs *csub) (*route, error) {
	b.routeMu.Lock()
	defer b.routeMu.Unlock()
	if b.closing() {
		return nil, ErrClosed
	}
	rt := b.routes[pattern]
	if rt == nil {
		rt = &route{b: b, pattern: pattern}
		rt.subs.Store(&[]*csub{})
		sub, err := b.bus.Subscribe(pattern, rt.handle, bus.Unfiltered(),
			bus.QueueSize(b.cfg.fanoutQueue), bus.OnFull(bus.Block))
		if err != nil {
			return nil, err
		}
		rt.sub = sub
		b.routes[pattern] = rt
	}
	old := *rt.subs.Load()
	list := append(slices.Clip(old), cs)
	rt.subs.Store(&list)
	cs.rt = rt
	return rt, nil
}

// release takes cs off its route, dropping the bus subscription with the
// last one. Caller holds no session lock.
func (b *Bridge) release(cs *csub) {
	rt := cs.rt
	if rt == nil {
		return
	}
	b.routeMu.Lock()
	defer b.routeMu.Unlock()
	list := slices.DeleteFunc(slices.Clone(*rt.subs.Load()), func(x *csub) bool { return x == cs })
	rt.subs.Store(&list)
	if len(list) == 0 && b.routes[rt.pattern] == rt {
		delete(b.routes, rt.pattern)
		rt.sub.Unsubscribe()
	}
}

// handle is the route's bus handler: it runs on the route's subscription
// goroutine, one message at a time, in sequence order per topic.
func (rt *route) handle(_ context.Context, m bus.Message[any]) error {
	rt.fanout(&m)
	return nil
}

// fanout offers one message to the route's client subscriptions.
func (rt *route) fanout(m *bus.Message[any]) {
	list := *rt.subs.Load()
	if len(list) == 0 {
		return
	}
	b := rt.b
	data, err := m.Data()
	if err != nil {
		b.log.Error("bridge: encode message", "topic", m.Topic(), "seq", m.Seq(), "err", err)
		return
	}
	tail := b.tail(m, data)
	if rooms := m.Rooms(); len(rooms) > 0 && len(list) > 8 {
		rt.toRooms(m, rooms, tail)
		return
	}
	for _, cs := range list {
		cs.s.offer(cs, m, tail)
	}
}

// tail encodes the shared part of a message frame.
func (b *Bridge) tail(m *bus.Message[any], data []byte) []byte {
	topic, _ := b.clientName(m.Topic())
	pos := m.Position()
	return wire.MessageTail(topic, pos.Epoch, pos.Seq, b.clientNames(m.Rooms()), m.Headers(), data)
}

// toRooms fans a message addressed to rooms out through the rooms'
// members rather than every subscription of the route.
func (rt *route) toRooms(m *bus.Message[any], rooms []string, tail []byte) {
	b := rt.b
	var seen map[string]struct{}
	if len(rooms) > 1 {
		seen = make(map[string]struct{})
	}
	for _, room := range rooms {
		for _, id := range b.bus.RoomMembers(room) {
			if seen != nil {
				if _, dup := seen[id]; dup {
					continue
				}
				seen[id] = struct{}{}
			}
			s := b.session(id)
			if s == nil {
				continue
			}
			for _, cs := range s.subsOn(rt) {
				s.offer(cs, m, tail)
			}
		}
	}
}

// subsOn returns the session's subscriptions on route rt.
func (s *session) subsOn(rt *route) []*csub {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*csub
	for _, cs := range s.subs {
		if cs.rt == rt {
			out = append(out, cs)
		}
	}
	return out
}

// watch is the bridge's one subscription to a room's join and leave
// events, shared by the sessions watching its presence.
type watch struct {
	b        *Bridge
	room     string // bus room
	sub      *bus.Subscription
	sessions atomic.Pointer[[]*session]
}

// watchRoom adds s to the watchers of bus room. Caller holds s.mu.
func (b *Bridge) watchRoom(room string, s *session) (*watch, error) {
	b.routeMu.Lock()
	defer b.routeMu.Unlock()
	if b.closing() {
		return nil, ErrClosed
	}
	w := b.watches[room]
	if w == nil {
		w = &watch{b: b, room: room}
		w.sessions.Store(&[]*session{})
		sub, err := b.bus.Subscribe(bus.RoomTopic(room), w.handle, bus.Volatile(), bus.QueueSize(b.cfg.fanoutQueue))
		if err != nil {
			return nil, err
		}
		w.sub = sub
		b.watches[room] = w
	}
	list := append(slices.Clip(*w.sessions.Load()), s)
	w.sessions.Store(&list)
	return w, nil
}

// unwatch removes s from w's watchers. Caller holds no session lock.
func (b *Bridge) unwatch(w *watch, s *session) {
	b.routeMu.Lock()
	defer b.routeMu.Unlock()
	list := slices.DeleteFunc(slices.Clone(*w.sessions.Load()), func(x *session) bool { return x == s })
	w.sessions.Store(&list)
	if len(list) == 0 && b.watches[w.room] == w {
		delete(b.watches, w.room)
		w.sub.Unsubscribe()
	}
}

func (w *watch) handle(_ context.Context, m bus.Message[any]) error {
	ev, ok := m.Value.(bus.RoomEvent)
	if !ok {
		return nil
	}
	b := w.b
	room, _ := b.clientName(ev.Room)
	f := wire.Frame{Op: wire.OpPresenceEvent, Room: room, Member: ev.Member, Joined: wire.Bool(ev.Joined)}
	if f.User = ev.Info; f.User == "" {
		f.User = b.bus.MemberInfo(ev.Member)
	}
	frame, err := wire.Encode(&f)
	if err != nil {
		return nil
	}
	for _, s := range *w.sessions.Load() {
		s.mu.Lock()
		if s.c != nil && s.watching[w.room] == w {
			s.c.sendFrame(frame)
		}
		s.mu.Unlock()
	}
	return nil
}
