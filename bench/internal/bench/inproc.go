package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierbus/courier/bus"
)

// Delivery modes of in-process implementations.
const (
	AtMostOnce  = "at-most-once"
	AtLeastOnce = "at-least-once"
)

// Event is the value every in-process scenario sends: a small struct, as a
// typed topic would carry. Implementations that move bytes encode it with
// encoding/json, and count that cost.
type Event struct {
	ID    int
	Kind  int
	Value float64
}

// Shape is an in-process scenario: Pubs publishers and Subs subscribers,
// each subscriber receiving every message; or, when Rooms > 0, Subs
// members spread over Rooms rooms, every message addressed to one room.
type Shape struct {
	Name       string
	Pubs, Subs int
	Rooms      int
}

// Recipients is how many deliveries one publish makes.
func (s Shape) Recipients() int {
	if s.Rooms > 0 {
		return s.Subs / s.Rooms
	}
	return s.Subs
}

// Shapes returns the standard in-process shapes: 1→1, 1→10 and 4→1.
func Shapes() []Shape {
	return []Shape{{"1to1", 1, 1, 0}, {"1to10", 1, 10, 0}, {"4to1", 4, 1, 0}}
}

// RoomShape is the rooms scenario: 1000 members in 10 rooms, one publisher
// addressing room r3 (100 deliveries per publish).
func RoomShape() Shape { return Shape{Name: "rooms", Pubs: 1, Subs: 1000, Rooms: 10} }

// Flow is an implementation set up for one shape, its subscribers ready.
type Flow interface {
	// Run publishes n messages in all (split among the publishers), or
	// fewer if ctx ends first, and returns once every subscriber has
	// received what was published, with the number of deliveries. An
	// at-most-once implementation that dropped messages returns what was
	// delivered within DrainTimeout.
	Run(ctx context.Context, n int) (delivered int64, err error)
	Close() error
}

// InProc is one implementation of the in-process scenarios.
type InProc struct {
	Name string // "chan", "courier", ...
	Mode string // AtMostOnce or AtLeastOnce
	Note string // how the library is used, for the report
	// Open sets up the shape. Implementations without rooms return
	// ErrUnsupported for a shape with Rooms.
	Open func(sh Shape) (Flow, error)
}

// ErrUnsupported is returned by Open for a scenario an implementation
// does not take part in.
var ErrUnsupported = errors.New("bench: scenario not supported by this implementation")

// DrainTimeout bounds how long Run waits for deliveries after publishing.
const DrainTimeout = 5 * time.Second

// RunInProc measures one run of fl: n messages, stopped at d.
func RunInProc(fl Flow, n int, d time.Duration) (Metrics, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return Measure(func() (int64, error) { return fl.Run(ctx, n) })
}

// Sinks counts deliveries per subscriber, each counter on its own cache
// line, so that counting adds no sharing between subscribers. Every
// implementation, the baselines included, counts each delivery with one
// uncontended atomic add (a few ns), so that the count is exact and
// race-free whatever goroutine a library runs its handlers on.
type Sinks struct{ c []paddedCount }

type paddedCount struct {
	n atomic.Int64
	_ [56]byte
}

// NewSinks returns counters for n subscribers.
func NewSinks(n int) *Sinks { return &Sinks{c: make([]paddedCount, n)} }

// Add counts one delivery to subscriber i.
func (s *Sinks) Add(i int) { s.c[i].n.Add(1) }

// Reset zeroes the counters.
func (s *Sinks) Reset() {
	for i := range s.c {
		s.c[i].n.Store(0)
	}
}

// Total returns the deliveries counted.
func (s *Sinks) Total() int64 {
	var t int64
	for i := range s.c {
		t += s.c[i].n.Load()
	}
	return t
}

// Wait waits until the counters reach want in total, or timeout; it
// returns the total. It polls, every 100µs.
func (s *Sinks) Wait(want int64, timeout time.Duration) int64 {
	deadline := time.Now().Add(timeout)
	for {
		t := s.Total()
		if t >= want || time.Now().After(deadline) {
			return t
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// Publish runs pubs publishers that share n messages and call send for
// each, checking ctx every 256 messages. It returns how many were sent.
func Publish(ctx context.Context, pubs, n int, send func(p, i int) error) (int64, error) {
	var sent atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, pubs)
	for p := range pubs {
		share := n / pubs
		if p < n%pubs {
			share++
		}
		wg.Go(func() {
			i := 0
			defer func() { sent.Add(int64(i)) }()
			for ; i < share; i++ {
				if i&255 == 255 && ctx.Err() != nil {
					return
				}
				if err := send(p, i); err != nil {
					errs[p] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return sent.Load(), errors.Join(errs...)
}

// roomOf says which room member i of sh is in, and target is the room
// every publish addresses.
func roomOf(sh Shape, i int) int { return i % sh.Rooms }

const targetRoom = 3

// Channels is the in-process baseline: buffered Go channels (capacity
// 1024, a subscription's default queue), one receiving goroutine per
// subscriber, the publisher sending each value to every subscriber's
// channel (for rooms: to the channels of one room's members).
func Channels() InProc {
	return InProc{
		Name: "chan", Mode: AtMostOnce,
		Note: "buffered channels (1024), one goroutine per subscriber",
		Open: func(sh Shape) (Flow, error) { return &chanFlow{sh: sh}, nil },
	}
}

type chanFlow struct{ sh Shape }

func (f *chanFlow) Run(ctx context.Context, n int) (int64, error) {
	chans := make([]chan Event, f.sh.Subs)
	targets := chans
	sinks := NewSinks(f.sh.Subs)
	var recv sync.WaitGroup
	for i := range chans {
		chans[i] = make(chan Event, 1024)
		recv.Go(func() {
			var sum int
			for ev := range chans[i] {
				sum += ev.ID
				sinks.Add(i)
			}
			_ = sum
		})
	}
	if f.sh.Rooms > 0 {
		targets = nil
		for i, ch := range chans {
			if roomOf(f.sh, i) == targetRoom {
				targets = append(targets, ch)
			}
		}
	}
	_, err := Publish(ctx, f.sh.Pubs, n, func(p, i int) error {
		ev := Event{ID: i, Kind: p}
		for _, ch := range targets {
			ch <- ev
		}
		return nil
	})
	for _, ch := range chans {
		close(ch)
	}
	recv.Wait()
	return sinks.Total(), err
}

func (f *chanFlow) Close() error { return nil }

// Courier returns the bus in mode AtMostOnce (Volatile, OnFull(Block)) or
// AtLeastOnce (the default subscription), through a typed topic.
func Courier(mode string) InProc {
	var subOpts []bus.SubscribeOption
	var pubOpts []bus.PublishOption
	note := "typed topic, default subscription (ack on return)"
	if mode == AtMostOnce {
		subOpts = []bus.SubscribeOption{bus.Volatile(), bus.OnFull(bus.Block)}
		pubOpts = []bus.PublishOption{bus.Volatile()}
		note = "typed topic, Volatile, OnFull(Block)"
	}
	return InProc{
		Name: "courier", Mode: mode, Note: note,
		Open: func(sh Shape) (Flow, error) { return openCourier(sh, subOpts, pubOpts) },
	}
}

type courierFlow struct {
	sh    Shape
	b     *bus.Bus
	tp    *bus.Topic[Event]
	sinks *Sinks
	pub   []bus.PublishOption
}

func openCourier(sh Shape, subOpts []bus.SubscribeOption, pubOpts []bus.PublishOption) (Flow, error) {
	b, err := bus.New()
	if err != nil {
		return nil, err
	}
	f := &courierFlow{sh: sh, b: b, sinks: NewSinks(sh.Subs), pub: pubOpts}
	if f.tp, err = bus.NewTopic[Event](b, "bench.events"); err != nil {
		b.Close()
		return nil, err
	}
	ctx := context.Background()
	for i := range sh.Subs {
		opts := subOpts
		if sh.Rooms > 0 {
			m, err := b.Member(fmt.Sprintf("m%d", i))
			if err == nil {
				err = m.Join(ctx, fmt.Sprintf("r%d", roomOf(sh, i)))
			}
			if err != nil {
				b.Close()
				return nil, err
			}
			opts = append(append([]bus.SubscribeOption(nil), subOpts...), bus.Owner(m))
		}
		sinks := f.sinks
		if _, err := f.tp.Subscribe(func(context.Context, bus.Message[Event]) error {
			sinks.Add(i)
			return nil
		}, opts...); err != nil {
			b.Close()
			return nil, err
		}
	}
	if sh.Rooms > 0 {
		f.pub = append(append([]bus.PublishOption(nil), pubOpts...), bus.To(fmt.Sprintf("r%d", targetRoom)))
	}
	return f, nil
}

func (f *courierFlow) Run(ctx context.Context, n int) (int64, error) {
	f.sinks.Reset()
	bg := context.Background()
	sent, err := Publish(ctx, f.sh.Pubs, n, func(p, i int) error {
		_, err := f.tp.Publish(bg, Event{ID: i, Kind: p}, f.pub...)
		return err
	})
	return f.sinks.Wait(sent*int64(f.sh.Recipients()), DrainTimeout), err
}

func (f *courierFlow) Close() error { return f.b.Close() }
