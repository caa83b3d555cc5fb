package bus

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// Member is a participant that can be in rooms: a bridge connection's
// identity, or an in-process one. Subscriptions made with [Owner] belong to
// it. Get one with [Bus.Member]; its methods are safe for concurrent use.
type Member struct {
	b  *Bus
	id string

	mu    sync.RWMutex
	info  string
	rooms map[string]struct{}
	subs  map[*Subscription]struct{}
	gone  bool
}

// room holds its members as a copy-on-write slice, so a publish reads it
// without a lock held across the fan-out.
type room struct {
	members []*Member
}

// RoomEvent is published to "$rooms.<room>" when a member joins or leaves.
type RoomEvent struct {
	Room   string `json:"room"`
	Member string `json:"member"`
	Joined bool   `json:"joined"`
	// Info is the member's info ([Member.SetInfo]), if it has one.
	Info string `json:"info,omitempty"`
}

const roomPrefix = "$rooms."

// RoomTopic returns the name of the topic that carries room's join and
// leave events.
func RoomTopic(room string) string { return roomPrefix + room }

// Member returns the member with this id, creating it. The id follows the
// rules of a topic name token sequence (see [ValidateTopic]).
func (b *Bus) Member(id string) (*Member, error) {
	if err := ValidateTopic(id); err != nil || reserved(id) {
		return nil, fmt.Errorf("%w: member id %q", ErrInvalidOption, id)
	}
	if b.closed() {
		return nil, ErrClosed
	}
	b.roomMu.Lock()
	defer b.roomMu.Unlock()
	m := b.members[id]
	if m == nil {
		m = &Member{b: b, id: id, rooms: make(map[string]struct{}), subs: make(map[*Subscription]struct{})}
		b.members[id] = m
	}
	return m, nil
}

// ID returns the member's id.
func (m *Member) ID() string { return m.id }

// SetInfo sets a short text describing the member, such as the user it
// acts for, which [Bus.MemberInfo] returns. With a [Broker] it travels with
// the member's joins, so other buses' presence lists can show it. Set it
// before joining rooms.
func (m *Member) SetInfo(info string) {
	m.mu.Lock()
	m.info = info
	m.mu.Unlock()
}

// Info returns what [Member.SetInfo] set.
func (m *Member) Info() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.info
}

// MemberInfo returns the info of the member with this id ([Member.SetInfo]):
// a member of this bus or, with a [Broker], one in a room of another bus.
// It is "" for an unknown member.
func (b *Bus) MemberInfo(id string) string {
	b.roomMu.RLock()
	m := b.members[id]
	info := b.remoteInfo[id]
	b.roomMu.RUnlock()
	if m != nil {
		return m.Info()
	}
	return info
}

func validRoom(name string) error {
	if err := ValidateTopic(name); err != nil || reserved(name) {
		return fmt.Errorf("%w: room %q", ErrInvalidTopic, name)
	}
	return nil
}

// Join adds the member to rooms and publishes a join event on each room's
// topic ([RoomTopic]). Joining a room twice is not an error and publishes
// nothing the second time.
func (m *Member) Join(ctx context.Context, rooms ...string) error {
	return m.change(ctx, rooms, true)
}

// Leave removes the member from rooms and publishes a leave event on each.
// Leaving a room it is not in is not an error.
func (m *Member) Leave(ctx context.Context, rooms ...string) error {
	return m.change(ctx, rooms, false)
}

func (m *Member) change(ctx context.Context, rooms []string, join bool) error {
	for _, r := range rooms {
		if err := validRoom(r); err != nil {
			return err
		}
	}
	b := m.b
	if b.closed() {
		return ErrClosed
	}
	if join {
		// A join publishes on the room's topic: make sure it can exist
		// before the member is in.
		for _, r := range rooms {
			if err := b.roomForTopic(RoomTopic(r)); err != nil {
				return err
			}
		}
	}
	var changed []string
	b.roomMu.Lock()
	m.mu.Lock()
	if m.gone {
		m.mu.Unlock()
		b.roomMu.Unlock()
		return ErrMemberRemoved
	}
	for _, name := range rooms {
		_, in := m.rooms[name]
		if in == join {
			continue
		}
		r := b.rooms[name]
		if join {
			m.rooms[name] = struct{}{}
			if r == nil {
				r = &room{}
				b.rooms[name] = r
			}
			b.rooms[name] = &room{members: append(slices.Clip(r.members), m)}
		} else {
			delete(m.rooms, name)
			rest := slices.DeleteFunc(slices.Clone(r.members), func(x *Member) bool { return x == m })
			if len(rest) == 0 {
				delete(b.rooms, name)
			} else {
				b.rooms[name] = &room{members: rest}
			}
		}
		changed = append(changed, name)
	}
	m.mu.Unlock()
	b.roomMu.Unlock()
	for _, name := range changed {
		if !b.remoteIn(name, m.id) {
			if err := b.roomEvent(ctx, RoomEvent{Room: name, Member: m.id, Joined: join, Info: m.Info()}); err != nil {
				return err
			}
		}
		if err := b.sharePresence(ctx, name, m, join); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bus) roomEvent(ctx context.Context, ev RoomEvent) error {
	return publishOne(ctx, b, RoomTopic(ev.Room), ev, Ephemeral())
}

// Rooms returns the rooms the member is in, sorted.
func (m *Member) Rooms() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.rooms))
	for r := range m.rooms {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// Remove makes the member leave every room (publishing the leave events)
// and ends the subscriptions it owns with [ErrMemberRemoved]. The id may be
// used again afterwards for a new member.
func (m *Member) Remove(ctx context.Context) error {
	rooms := m.Rooms()
	err := m.Leave(ctx, rooms...)
	b := m.b
	b.roomMu.Lock()
	m.mu.Lock()
	m.gone = true
	subs := make([]*Subscription, 0, len(m.subs))
	for s := range m.subs {
		subs = append(subs, s)
	}
	if b.members[m.id] == m {
		delete(b.members, m.id)
	}
	m.mu.Unlock()
	b.roomMu.Unlock()
	for _, s := range subs {
		s.end(ErrMemberRemoved)
	}
	return err
}

func (m *Member) removed() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.gone
}

// own records s as the member's; false when the member is gone.
func (m *Member) own(s *Subscription) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone {
		return false
	}
	m.subs[s] = struct{}{}
	return true
}

func (m *Member) disown(s *Subscription) {
	m.mu.Lock()
	delete(m.subs, s)
	m.mu.Unlock()
}

func (m *Member) inAny(rooms []string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, r := range rooms {
		if _, ok := m.rooms[r]; ok {
			return true
		}
	}
	return false
}

// accepts applies the Except and ExceptMember filters.
func (m *Member) accepts(md *meta) bool {
	if md.exceptMember != "" && md.exceptMember == m.id {
		return false
	}
	return len(md.except) == 0 || !m.inAny(md.except)
}

// reaches applies all of a message's room filters to member mem (nil for
// a subscription without an owner).
func reaches(md *meta, mem *Member) bool {
	if mem == nil {
		return len(md.to) == 0
	}
	if len(md.to) > 0 && !mem.inAny(md.to) {
		return false
	}
	return mem.accepts(md)
}

// RoomMembers returns the ids of the members in room, sorted (presence).
// With a [Broker], the members of every bus sharing it.
func (b *Bus) RoomMembers(room string) []string {
	ms := b.roomMembers(room)
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.id
	}
	slices.Sort(out)
	return b.withRemote(room, out)
}

func (b *Bus) roomMembers(name string) []*Member {
	b.roomMu.RLock()
	defer b.roomMu.RUnlock()
	if r := b.rooms[name]; r != nil {
		return r.members
	}
	return nil
}

// Rooms returns the names of the rooms that have members, sorted. With a
// [Broker], the rooms of every bus sharing it.
func (b *Bus) Rooms() []string {
	b.roomMu.RLock()
	defer b.roomMu.RUnlock()
	out := make([]string, 0, len(b.rooms)+len(b.remote))
	for r := range b.rooms {
		out = append(out, r)
	}
	for r := range b.remote {
		if b.rooms[r] == nil {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}
