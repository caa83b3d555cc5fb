package bus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/courierbus/courier/bus"
)

// roomFixture has members a..e with one subscription each on topic "chat".
// Rooms: r1 = {a, b, c}, r2 = {c, d}, r3 = {b}; e is in no room.
type roomFixture struct {
	b       *bus.Bus
	tp      *bus.Topic[string]
	members map[string]*bus.Member
	mu      sync.Mutex
	got     map[string][]string // member -> values received
	count   sync.WaitGroup
}

func newRoomFixture(t *testing.T) *roomFixture {
	f := &roomFixture{b: newBus(t), members: map[string]*bus.Member{}, got: map[string][]string{}}
	f.tp = newTopic[string](t, f.b, "chat")
	ctx := context.Background()
	rooms := map[string][]string{"a": {"r1"}, "b": {"r1", "r3"}, "c": {"r1", "r2"}, "d": {"r2"}, "e": nil}
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		m, err := f.b.Member(id)
		if err != nil {
			t.Fatal(err)
		}
		f.members[id] = m
		if err := m.Join(ctx, rooms[id]...); err != nil {
			t.Fatal(err)
		}
		if _, err := f.tp.Subscribe(func(_ context.Context, msg bus.Message[string]) error {
			f.mu.Lock()
			f.got[id] = append(f.got[id], msg.Value)
			f.mu.Unlock()
			f.count.Done()
			return nil
		}, bus.Owner(m)); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestRoomsDeliverExactlyOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []bus.PublishOption
		want []string // members that receive the message once
	}{
		{"everyone", nil, []string{"a", "b", "c", "d", "e"}},
		{"one room", []bus.PublishOption{bus.To("r2")}, []string{"c", "d"}},
		{"union counts c once", []bus.PublishOption{bus.To("r1", "r2")}, []string{"a", "b", "c", "d"}},
		{"union minus room", []bus.PublishOption{bus.To("r1", "r2"), bus.Except("r3")}, []string{"a", "c", "d"}},
		{"all but a room", []bus.PublishOption{bus.Except("r1")}, []string{"d", "e"}},
		{"room minus sender", []bus.PublishOption{bus.To("r1"), bus.ExceptMember("a")}, []string{"b", "c"}},
		{"empty room", []bus.PublishOption{bus.To("nobody")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRoomFixture(t)
			f.count.Add(len(tc.want))
			publish(t, f.tp, "hi", tc.opts...)
			f.count.Wait()
			// Publish an unaddressed marker to everyone and wait for it, so
			// that any stray extra delivery of "hi" would have arrived.
			f.count.Add(5)
			publish(t, f.tp, "end")
			f.count.Wait()
			f.mu.Lock()
			defer f.mu.Unlock()
			for id := range f.members {
				n := 0
				for _, v := range f.got[id] {
					if v == "hi" {
						n++
					}
				}
				want := 0
				if slices.Contains(tc.want, id) {
					want = 1
				}
				if n != want {
					t.Errorf("member %s received the message %d times, want %d", id, n, want)
				}
			}
		})
	}
}

func TestUnownedSubscriptionGetsNoAddressedMessage(t *testing.T) {
	b := newBus(t)
	tp := newTopic[string](t, b, "chat")
	got := make(chan string, 4)
	tp.Subscribe(func(_ context.Context, m bus.Message[string]) error { got <- m.Value; return nil })
	publish(t, tp, "to room", bus.To("r1"))
	publish(t, tp, "to all")
	if v := recv(t, got); v != "to all" {
		t.Fatalf("unowned subscriber got %q first, want only %q", v, "to all")
	}
}

func TestPresenceAndRoomEvents(t *testing.T) {
	b := newBus(t)
	ctx := context.Background()
	events := make(chan bus.RoomEvent, 10)
	if _, err := b.Subscribe("$rooms.*", func(_ context.Context, m bus.Message[any]) error {
		events <- m.Value.(bus.RoomEvent)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	alice, _ := b.Member("alice")
	bob, _ := b.Member("bob")
	if err := alice.Join(ctx, "lobby", "games"); err != nil {
		t.Fatal(err)
	}
	bob.Join(ctx, "lobby")
	bob.Join(ctx, "lobby") // twice: no second event
	if got := b.RoomMembers("lobby"); fmt.Sprint(got) != "[alice bob]" {
		t.Fatalf("lobby members = %v", got)
	}
	if got := alice.Rooms(); fmt.Sprint(got) != "[games lobby]" {
		t.Fatalf("alice's rooms = %v", got)
	}
	if got := b.Rooms(); fmt.Sprint(got) != "[games lobby]" {
		t.Fatalf("rooms = %v", got)
	}
	alice.Leave(ctx, "games")
	want := []bus.RoomEvent{
		{Room: "lobby", Member: "alice", Joined: true},
		{Room: "games", Member: "alice", Joined: true},
		{Room: "lobby", Member: "bob", Joined: true},
		{Room: "games", Member: "alice", Joined: false},
	}
	for _, w := range want {
		if ev := recv(t, events); ev != w {
			t.Fatalf("event %+v, want %+v", ev, w)
		}
	}
	none(t, events)
	if got := b.Rooms(); fmt.Sprint(got) != "[lobby]" {
		t.Fatalf("rooms after the last member left games = %v", got)
	}
	if err := alice.Join(ctx, "bad room"); !errors.Is(err, bus.ErrInvalidTopic) {
		t.Fatalf("Join of an invalid room name: %v", err)
	}
}

func TestRemovedMemberLeavesRoomsAndEndsSubscriptions(t *testing.T) {
	b := newBus(t)
	ctx := context.Background()
	tp := newTopic[string](t, b, "chat")
	m, _ := b.Member("carol")
	m.Join(ctx, "r1", "r2")
	ended := make(chan error, 1)
	sub, err := tp.Subscribe(func(context.Context, bus.Message[string]) error { return nil },
		bus.Owner(m), bus.OnEnd(func(err error) { ended <- err }))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, ended); !errors.Is(err, bus.ErrMemberRemoved) {
		t.Fatalf("subscription ended with %v, want ErrMemberRemoved", err)
	}
	<-sub.Done()
	if len(b.RoomMembers("r1"))+len(b.RoomMembers("r2")) != 0 {
		t.Fatal("removed member still listed in a room")
	}
	if err := m.Join(ctx, "r1"); !errors.Is(err, bus.ErrMemberRemoved) {
		t.Fatalf("Join after Remove: %v, want ErrMemberRemoved", err)
	}
	if _, err := tp.Subscribe(func(context.Context, bus.Message[string]) error { return nil }, bus.Owner(m)); !errors.Is(err, bus.ErrMemberRemoved) {
		t.Fatalf("Subscribe owned by a removed member: %v", err)
	}
}

func TestUnfilteredGetsEveryMessageAndChecksReaches(t *testing.T) {
	b := newBus(t)
	ctx := context.Background()
	tp := newTopic[string](t, b, "chat")
	alice, _ := b.Member("alice")
	alice.Join(ctx, "r1")
	bob, _ := b.Member("bob")
	type got struct {
		v          string
		alice, bob bool
	}
	ch := make(chan got, 10)
	if _, err := tp.Subscribe(func(_ context.Context, m bus.Message[string]) error {
		ch <- got{m.Value, m.Reaches(alice), m.Reaches(bob)}
		return nil
	}, bus.Unfiltered()); err != nil {
		t.Fatal(err)
	}
	publish(t, tp, "to r1", bus.To("r1"))
	publish(t, tp, "not alice", bus.ExceptMember("alice"))
	publish(t, tp, "all")
	for _, want := range []got{{"to r1", true, false}, {"not alice", false, true}, {"all", true, true}} {
		if g := recv(t, ch); g != want {
			t.Fatalf("got %+v, want %+v", g, want)
		}
	}
}
