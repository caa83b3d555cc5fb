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
	busSub
	b       *Bridge
	pattern string                  // bus pattern
	subs    atomic.Pointer[[]*csub] // copy on write, under b.routeMu
}

// busSub is the one bus subscription of a route or a watch.
type busSub struct {
	made chan struct{}     // closed once sub is made, or failed
	sub  *bus.Subscription // under b.routeMu; nil until made
}

func (bs *busSub) base() *busSub { return bs }

// share finds the route or watch of key in the map get returns, or makes
// one with mk and its bus subscription with subscribe, and runs add on
// it, under b.routeMu. The bus may reach its store or broker to
// subscribe, so subscribe runs under no lock: who wants the same key
// meanwhile waits for it, others go on.
func share[V interface{ base() *busSub }](b *Bridge, get func() map[string]V, key string,
	mk func() V, subscribe func(V) (*bus.Subscription, error), add func(V)) error {
	for {
		b.routeMu.Lock()
		if b.closing() {
			b.routeMu.Unlock()
			return ErrClosed
		}
		v, ok := get()[key]
		switch {
		case !ok:
			v = mk()
			bs := v.base()
			bs.made = make(chan struct{})
			get()[key] = v
			b.routeMu.Unlock()
			sub, err := subscribe(v)
			b.routeMu.Lock()
			close(bs.made)
			cur, ok := get()[key]
			mine := ok && cur.base() == bs
			if err == nil && !mine {
				err = ErrClosed // the bridge closed meanwhile
			}
			if err != nil {
				if mine {
					delete(get(), key)
				}
				b.routeMu.Unlock()
				if sub != nil {
					sub.Unsubscribe()
				}
				return err
			}
			bs.sub = sub
		case v.base().sub == nil:
			made := v.base().made
			b.routeMu.Unlock()
			select {
			case <-made:
			case <-b.ctx.Done():
				return ErrClosed
			}
			continue
		}
		add(v)
		b.routeMu.Unlock()
		return nil
	}
}

// acquire adds cs to the route of a bus pattern, subscribing to the bus
// when it is the first (see share). Caller holds no session lock.
func (b *Bridge) acquire(pattern string, cs *csub) error {
	return share(b, func() map[string]*route { return b.routes }, pattern,
		func() *route {
			rt := &route{b: b, pattern: pattern}
			rt.subs.Store(&[]*csub{})
			return rt
		},
		func(rt *route) (*bus.Subscription, error) {
			return b.bus.Subscribe(pattern, rt.handle, bus.Unfiltered(),
				bus.QueueSize(b.cfg.fanoutQueue), bus.OnFull(bus.Block))
		},
		func(rt *route) {
			list := append(slices.Clip(*rt.subs.Load()), cs)
			rt.subs.Store(&list)
			cs.rt = rt
		})
}

// release takes cs off its route, dropping the bus subscription with the
// last one. Caller holds no session lock.
func (b *Bridge) release(cs *csub) {
	rt := cs.rt
	if rt == nil {
		return
	}
	b.routeMu.Lock()
	list := slices.DeleteFunc(slices.Clone(*rt.subs.Load()), func(x *csub) bool { return x == cs })
	rt.subs.Store(&list)
	var drop *bus.Subscription
	if len(list) == 0 && b.routes[rt.pattern] == rt {
		delete(b.routes, rt.pattern)
		drop = rt.sub
	}
	b.routeMu.Unlock()
	if drop != nil {
		drop.Unsubscribe()
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
	busSub
	b        *Bridge
	room     string // bus room
	sessions atomic.Pointer[[]*session]
}

// watchRoom adds s to the watchers of bus room, subscribing to the room's
// events when s is the first (see share). Caller holds no session lock.
func (b *Bridge) watchRoom(room string, s *session) (*watch, error) {
	var out *watch
	err := share(b, func() map[string]*watch { return b.watches }, room,
		func() *watch {
			w := &watch{b: b, room: room}
			w.sessions.Store(&[]*session{})
			return w
		},
		func(w *watch) (*bus.Subscription, error) {
			return b.bus.Subscribe(bus.RoomTopic(room), w.handle, bus.Volatile(), bus.QueueSize(b.cfg.fanoutQueue))
		},
		func(w *watch) {
			if list := *w.sessions.Load(); !slices.Contains(list, s) {
				list = append(slices.Clip(list), s)
				w.sessions.Store(&list)
			}
			out = w
		})
	return out, err
}

// unwatch removes s from w's watchers. Caller holds no session lock.
func (b *Bridge) unwatch(w *watch, s *session) {
	b.routeMu.Lock()
	list := slices.DeleteFunc(slices.Clone(*w.sessions.Load()), func(x *session) bool { return x == s })
	w.sessions.Store(&list)
	var drop *bus.Subscription
	if len(list) == 0 && b.watches[w.room] == w {
		delete(b.watches, w.room)
		drop = w.sub
	}
	b.routeMu.Unlock()
	if drop != nil {
		drop.Unsubscribe()
	}
}

func (w *watch) handle(_ context.Context, m bus.Message[any]) error {
	ev, ok := m.Value.(bus.RoomEvent)
	if !ok {
		return nil
	}
	b := w.b
	room, _ := b.clientName(ev.Room)
	f := wire.Frame{Op: wire.OpPresenceEvent, Room: room, Member: ev.Member, Joined: wire.Bool(ev.Joined), Away: wire.Bool(false)}
	if f.User = ev.Info; f.User == "" {
		f.User = b.bus.MemberInfo(ev.Member)
	}
	if frame, err := wire.Encode(&f); err == nil {
		w.send(frame)
	}
	return nil
}

// send sends a presence_event frame to the sessions watching w.
func (w *watch) send(frame []byte) {
	for _, s := range *w.sessions.Load() {
		s.mu.Lock()
		if s.c != nil && s.watching[w.room] == w {
			s.c.sendFrame(frame)
		}
		s.mu.Unlock()
	}
}
