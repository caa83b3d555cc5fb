package bus_test

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/courierbus/courier/bus"
)

// event is the value every benchmark sends: a small struct, as a typed
// topic would carry.
type event struct {
	ID    int
	Kind  int
	Value float64
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs publish (which must deliver deliveries messages in all and
// return once they are delivered) and reports delivered msgs/s and CPU time
// per delivered message.
func measure(b *testing.B, deliveries int, run func()) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	run()
	wall, cpu := time.Since(t0), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(deliveries)/wall.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(deliveries), "cpu-ns/msg")
	b.ReportMetric(0, "ns/op") // wall time per op is meaningless across shapes
}

// shapes are the publisher/subscriber counts of the in-process benchmarks.
var shapes = []shape{
	{"1to1", 1, 1},
	{"1to10", 1, 10},
	{"4to1", 4, 1},
}

// splitN gives publisher p its share of n messages.
func splitN(n, pubs, p int) int {
	share := n / pubs
	if p < n%pubs {
		share++
	}
	return share
}

// BenchmarkDelivery compares, shape by shape, the bus with its baseline:
// the same values through buffered Go channels (capacity 1024, as a
// subscription's default queue) to the same number of receiving
// goroutines. Sub-benchmark names carry impl=..., so that
//
//	go test -run '^$' -bench Delivery -count 10 ./bus | tee d.txt
//	benchstat -col /impl d.txt
//
// prints each shape's figures side by side with ratios to the channels.
// The metrics that matter are msgs/s (delivered messages per second, wall
// time) and cpu-ns/msg (process CPU time per delivered message).
func BenchmarkDelivery(b *testing.B) {
	amo := impl{"at-most-once", []bus.SubscribeOption{bus.Volatile(), bus.OnFull(bus.Block)}, []bus.PublishOption{bus.Volatile()}, false}
	alo := impl{"at-least-once", nil, nil, false}
	manual := impl{"manual-ack", []bus.SubscribeOption{bus.ManualAck()}, nil, true}
	for _, sh := range shapes {
		b.Run("shape="+sh.name, func(b *testing.B) {
			b.Run("impl=chan", func(b *testing.B) { benchChannels(b, sh) })
			b.Run("impl="+amo.name, func(b *testing.B) { benchBus(b, sh, amo) })
			b.Run("impl="+alo.name, func(b *testing.B) { benchBus(b, sh, alo) })
			b.Run("impl="+manual.name, func(b *testing.B) { benchBus(b, sh, manual) })
		})
	}
}

type shape struct {
	name      string
	pubs, sub int
}

type impl struct {
	name    string
	subOpts []bus.SubscribeOption
	pubOpts []bus.PublishOption
	ack     bool // the handler acknowledges with Message.Ack (ManualAck)
}

func benchChannels(b *testing.B, sh shape) {
	chans := make([]chan event, sh.sub)
	var recv sync.WaitGroup
	for i := range chans {
		chans[i] = make(chan event, 1024)
		recv.Add(1)
		go func(ch chan event) {
			defer recv.Done()
			var sum int
			for ev := range ch {
				sum += ev.ID
			}
			_ = sum
		}(chans[i])
	}
	measure(b, b.N*sh.sub, func() {
		var pubs sync.WaitGroup
		for p := range sh.pubs {
			pubs.Go(func() {
				for i := range splitN(b.N, sh.pubs, p) {
					ev := event{ID: i, Kind: p}
					for _, ch := range chans {
						ch <- ev
					}
				}
			})
		}
		pubs.Wait()
		for _, ch := range chans {
			close(ch)
		}
		recv.Wait()
	})
}

// benchBus publishes b.N events through a typed topic to sh.sub
// subscribers and waits until every one is handled.
func benchBus(b *testing.B, sh shape, im impl) {
	bs, err := bus.New()
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	tp, err := bus.NewTopic[event](bs, "bench")
	if err != nil {
		b.Fatal(err)
	}
	// Each subscriber counts on its own, as each baseline receiver does.
	var recv sync.WaitGroup
	recv.Add(sh.sub)
	for range sh.sub {
		count := 0
		if _, err := tp.Subscribe(func(_ context.Context, m bus.Message[event]) error {
			if im.ack {
				m.Ack()
			}
			if count++; count == b.N {
				recv.Done()
			}
			return nil
		}, im.subOpts...); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	measure(b, b.N*sh.sub, func() {
		var pubs sync.WaitGroup
		for p := range sh.pubs {
			pubs.Go(func() {
				for i := range splitN(b.N, sh.pubs, p) {
					if _, err := tp.Publish(ctx, event{ID: i, Kind: p}, im.pubOpts...); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		pubs.Wait()
		recv.Wait()
	})
}

// BenchmarkRooms: 1000 members in 10 rooms, each member with one volatile
// Block subscription; every publish goes to one room (100 deliveries). The
// baseline is 1000 receiving goroutines with a channel each, the publisher
// sending to the 100 of one room.
func BenchmarkRooms(b *testing.B) {
	b.Run("impl=chan", func(b *testing.B) {
		chans := make([]chan event, 1000)
		var recv sync.WaitGroup
		for i := range chans {
			chans[i] = make(chan event, 1024)
			recv.Add(1)
			go func(ch chan event) {
				defer recv.Done()
				for range ch {
				}
			}(chans[i])
		}
		measure(b, b.N*100, func() {
			for i := range b.N {
				for j := 3; j < 1000; j += 10 {
					chans[j] <- event{ID: i}
				}
			}
			for _, ch := range chans {
				close(ch)
			}
			recv.Wait()
		})
	})
	b.Run("impl=bus", func(b *testing.B) {
		bs, err := bus.New()
		if err != nil {
			b.Fatal(err)
		}
		defer bs.Close()
		tp, _ := bus.NewTopic[event](bs, "rooms")
		ctx := context.Background()
		var recv sync.WaitGroup
		for i := range 1000 {
			m, _ := bs.Member(fmt.Sprintf("m%d", i))
			m.Join(ctx, fmt.Sprintf("r%d", i%10))
			count := 0
			if i%10 == 3 {
				recv.Add(1)
			}
			tp.Subscribe(func(context.Context, bus.Message[event]) error {
				if count++; count == b.N {
					recv.Done()
				}
				return nil
			}, bus.Owner(m), bus.Volatile(), bus.OnFull(bus.Block))
		}
		room := bus.To("r3")
		measure(b, b.N*100, func() {
			for i := range b.N {
				if _, err := tp.Publish(ctx, event{ID: i}, room); err != nil {
					b.Fatal(err)
				}
			}
			recv.Wait()
		})
	})
}

// TestPublishAllocations holds the allocation budget of the hot path: a
// publish shares one allocation with the next 31 (the topic's slab of
// messages), and a delivery allocates nothing.
func TestPublishAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	b := newBus(t)
	tp := newTopic[event](t, b, "allocs")
	for range 10 {
		tp.Subscribe(func(context.Context, bus.Message[event]) error { return nil })
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts []bus.PublishOption
	}{
		{"at-least-once", nil},
		{"volatile", []bus.PublishOption{bus.Volatile()}},
	} {
		allocs := testing.AllocsPerRun(3200, func() { tp.Publish(ctx, event{ID: 1}, tc.opts...) })
		if allocs > 1.0/16 {
			t.Errorf("%s: %.3f allocations per publish to 10 subscribers, want 1/32", tc.name, allocs)
		}
	}
}

// BenchmarkMatchScaling publishes to a topic with one subscriber while
// n other subscriptions (exact and wildcard, on other topics) exist: the
// trie and the per-topic match cache keep the cost flat in n.
func BenchmarkMatchScaling(b *testing.B) {
	for _, n := range []int{0, 1000, 10000} {
		b.Run(fmt.Sprintf("others=%d", n), func(b *testing.B) {
			bs, err := bus.New()
			if err != nil {
				b.Fatal(err)
			}
			defer bs.Close()
			nop := func(context.Context, bus.Message[any]) error { return nil }
			for i := range n {
				p := fmt.Sprintf("other.%d.x", i)
				if i%10 == 0 {
					p = fmt.Sprintf("other.*.y%d", i)
				}
				if _, err := bs.Subscribe(p, nop, bus.Volatile()); err != nil {
					b.Fatal(err)
				}
			}
			tp, _ := bus.NewTopic[event](bs, "target.topic")
			tp.Subscribe(func(context.Context, bus.Message[event]) error { return nil }, bus.Volatile())
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				tp.Publish(ctx, event{ID: 1}, bus.Volatile())
			}
		})
	}
}

// TestDeliveryAllocations holds the budget of a delivery, each with its
// own handler context: in the default mode and under ManualAck (settled
// with Message.Ack) it costs no allocation of its own beyond its share of
// the worker's slab of deliveries, one in 256.
func TestDeliveryAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	for _, tc := range []struct {
		name   string
		manual bool
	}{
		{"at-least-once", false},
		{"manual-ack", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBus(t)
			tp := newTopic[event](t, b, "delivery-allocs")
			done := make(chan struct{}, 1)
			var opts []bus.SubscribeOption
			if tc.manual {
				opts = append(opts, bus.ManualAck())
			}
			tp.Subscribe(func(ctx context.Context, m bus.Message[event]) error {
				if tc.manual {
					if err := m.Ack(); err != nil {
						t.Error(err)
					}
				}
				done <- struct{}{}
				return nil
			}, opts...)
			ctx := context.Background()
			allocs := testing.AllocsPerRun(3200, func() {
				tp.Publish(ctx, event{ID: 1})
				<-done
			})
			// AllocsPerRun counts whole allocations per run: the shares of
			// the slabs (1/32 for the publish, 1/256 for the delivery)
			// round down to 0.
			if allocs != 0 {
				t.Errorf("%.0f allocations per published and delivered message, want 0", allocs)
			}
		})
	}
}
