package bridge

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
)

// route is the bridge's one bus subscription for a distinct pattern: it
// fans each message out to the client subscriptions on it, encoding the
// message once.
//
// The bus hands a subscription without an owner no message addressed with
// To, so the route sees gaps in a topic's sequence where such messages
// were published. It fills them from history before going on, so that the
// client subscriptions see every sequence number in order: on the next
// message of the topic, at once when a client of this bridge published the
// addressed message (poke), and within a few milliseconds for topics that
// carried addressed messages lately (the bridge polls them).
type route struct {
	b       *Bridge
	pattern string // bus pattern
	sub     *bus.Subscription
	subs    atomic.Pointer[[]*csub] // copy on write, under b.routeMu
	start   time.Time               // when the route began

	mu        sync.Mutex           // serializes fan-out: bus deliveries, fills and pokes
	last      map[string]uint64    // per topic: last sequence number fanned out
	addressed map[string]time.Time // topics with addressed messages, when last seen
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
		rt = &route{b: b, pattern: pattern, start: time.Now(), last: make(map[string]uint64)}
		rt.subs.Store(&[]*csub{})
		sub, err := b.bus.Subscribe(pattern, rt.handle, bus.QueueSize(b.cfg.fanoutQueue), bus.OnFull(bus.Block))
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
	rt.mu.Lock()
	defer rt.mu.Unlock()
	seq := m.Seq()
	if seq == 0 {
		rt.fanout(&m)
		return nil
	}
	topic := m.Topic()
	last, known := rt.last[topic]
	switch {
	case known && seq <= last:
		return nil // filled from history already
	case known && seq > last+1:
		rt.fill(topic, last+1, seq-1)
	case !known:
		rt.backfill(topic, seq-1)
	}
	rt.fanout(&m)
	rt.last[topic] = seq
	return nil
}

// poke makes the route fan out topic up to seq, reading from history what
// the bus did not hand it (messages addressed with To).
func (rt *route) poke(topic string, seq uint64) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	last, known := rt.last[topic]
	switch {
	case known && seq <= last:
	case known:
		rt.fill(topic, last+1, seq)
	default:
		rt.backfill(topic, seq)
	}
}

// backfill fans out the messages of a topic the route has not seen yet,
// published since the route began, up to seq. Caller holds rt.mu.
func (rt *route) backfill(topic string, seq uint64) {
	if seq == 0 {
		return
	}
	b := rt.b
	first, err := b.firstHeld(topic, 1)
	if err != nil || first > seq {
		return
	}
	// The first message published since the route began.
	lo, hi := first, seq+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		msgs, err := b.bus.Read(b.ctx, topic, mid, 1)
		if err != nil || len(msgs) == 0 {
			return
		}
		if msgs[0].Time().Before(rt.start) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo <= seq {
		rt.fill(topic, lo, seq)
	} else {
		rt.last[topic] = seq
	}
}

// fill fans out the messages from..to of topic from history. Caller holds
// rt.mu.
func (rt *route) fill(topic string, from, to uint64) {
	b := rt.b
	for from <= to {
		msgs, err := b.bus.Read(b.ctx, topic, from, int(min(to-from+1, 256)))
		if errors.Is(err, bus.ErrNotCovered) {
			if from, err = b.firstHeld(topic, from); err == nil {
				continue
			}
		}
		if err != nil || len(msgs) == 0 {
			break
		}
		for i := range msgs {
			m := &msgs[i]
			if m.Seq() > to {
				break
			}
			if len(m.Rooms()) > 0 {
				if rt.addressed == nil {
					rt.addressed = make(map[string]time.Time)
				}
				rt.addressed[topic] = time.Now()
			}
			rt.fanout(m)
			from = m.Seq() + 1
		}
	}
	rt.last[topic] = max(rt.last[topic], to)
}

// fanout offers one message to the route's client subscriptions. Caller
// holds rt.mu.
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

// pokeRoutes makes the routes matching topic fan it out up to seq, after
// a client of this bridge published an addressed message.
func (b *Bridge) pokeRoutes(topic string, seq uint64) {
	b.routeMu.Lock()
	var rts []*route
	for p, rt := range b.routes {
		if bus.Match(p, topic) {
			rts = append(rts, rt)
		}
	}
	b.routeMu.Unlock()
	for _, rt := range rts {
		rt.poke(topic, seq)
	}
}

// pollLoop pokes, every few milliseconds, the topics that carried
// addressed messages in the last minute, so that one published in-process
// with nothing after it is not held back.
func (b *Bridge) pollLoop() {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		b.clock.Store(int64(time.Since(b.clock0)))
		b.routeMu.Lock()
		rts := make([]*route, 0, len(b.routes))
		for _, rt := range b.routes {
			rts = append(rts, rt)
		}
		b.routeMu.Unlock()
		for _, rt := range rts {
			for _, topic := range rt.addressedTopics() {
				if pos, err := b.bus.Position(b.ctx, topic); err == nil {
					rt.poke(topic, pos.Seq)
				}
			}
		}
	}
}

// addressedTopics returns the topics with addressed messages in the last
// minute, forgetting older ones.
func (rt *route) addressedTopics() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var out []string
	for topic, at := range rt.addressed {
		if time.Since(at) > time.Minute {
			delete(rt.addressed, topic)
			continue
		}
		out = append(out, topic)
	}
	return out
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
	if s := b.session(ev.Member); s != nil {
		f.User = s.ident.ID
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
