package bridge_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/courierbus/courier/bridge/client"
)

// counter counts deliveries over all clients and notes when a target is
// reached.
type counter struct {
	n      atomic.Int64
	mu     sync.Mutex
	target int64
	hit    chan time.Time
}

func (c *counter) add() {
	if v := c.n.Add(1); v == c.target {
		select {
		case c.hit <- time.Now():
		default:
		}
	}
}

// expect arms the counter for a total of target deliveries.
func (c *counter) expect(target int64) {
	c.mu.Lock()
	c.target = target
	c.mu.Unlock()
	if c.n.Load() >= target {
		select {
		case c.hit <- time.Now():
		default:
		}
	}
}

// BenchmarkBroadcast broadcasts to 1000 and 5000 connections through the
// bridge (Go clients, volatile and at-least-once subscriptions, and raw
// readers) and through raw melody's Broadcast of the same bytes (gorilla
// readers). The server runs in a child process on half the CPUs. It
// reports delivered messages per second, the server's CPU time and write
// system calls per delivered message, and the p99 time for one broadcast
// to reach every client.
func BenchmarkBroadcast(b *testing.B) {
	for _, conns := range []int{1000, 5000} {
		for _, mode := range []string{"melody", "bridge-raw", "bridge-volatile", "bridge-at-least-once"} {
			b.Run(fmt.Sprintf("conns=%d/%s", conns, mode), func(b *testing.B) { broadcast(b, conns, mode) })
		}
	}
}

func broadcast(b *testing.B, conns int, mode string) {
	const burst, rounds, size = 200, 100, 100
	server := "bridge"
	if mode == "melody" {
		server = "melody"
	}
	srv := startServer(b, server)
	url := "ws://" + srv.addr + "/bus/"
	cnt := &counter{hit: make(chan time.Time, 1)}
	var stop []func()
	defer func() {
		for _, f := range stop {
			f()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i := range conns {
		if server == "melody" || mode == "bridge-raw" {
			// A bare reader, as cheap as a client can be: it
			// counts message frames in each WebSocket message.
			ws, _, err := websocket.DefaultDialer.Dial(url, nil)
			if err != nil {
				b.Fatalf("conn %d: %v", i, err)
			}
			if mode == "bridge-raw" {
				ws.WriteMessage(websocket.TextMessage, []byte(`[{"op":"hello","v":1},{"op":"subscribe","id":"s","sub":"s","pattern":"bench.all","volatile":true}]`))
				for {
					_, msg, err := ws.ReadMessage()
					if err != nil {
						b.Fatal(err)
					}
					if bytes.Contains(msg, []byte(`"subscribed"`)) {
						break
					}
				}
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					_, msg, err := ws.ReadMessage()
					if err != nil {
						return
					}
					for range bytes.Count(msg, []byte(`"op":"message"`)) {
						cnt.add()
					}
				}
			}()
			stop = append(stop, func() { ws.Close(); <-done })
			continue
		}
		c, err := client.Dial(ctx, url)
		if err != nil {
			b.Fatalf("conn %d: %v", i, err)
		}
		opts := []client.SubscribeOption{client.MaxUnacked(4096)}
		if mode == "bridge-volatile" {
			opts = append(opts, client.Volatile())
		}
		if _, err := c.Subscribe(ctx, "bench.all", func(context.Context, *client.Message) error {
			cnt.add()
			return nil
		}, opts...); err != nil {
			b.Fatal(err)
		}
		stop = append(stop, func() { c.Close() })
	}
	volatile := mode == "bridge-volatile" || mode == "bridge-raw"
	// Throughput: bursts, until every client has every message.
	before := srv.stats(b)
	start := time.Now()
	var total int64
	for range 5 {
		total += int64(burst * conns)
		cnt.expect(total)
		srv.publish(b, burst, size, volatile)
		select {
		case <-cnt.hit:
		case <-time.After(time.Minute):
			b.Fatalf("delivered %d of %d", cnt.n.Load(), total)
		}
	}
	elapsed := time.Since(start)
	after := srv.stats(b)
	// Latency: one broadcast at a time.
	lat := make([]time.Duration, 0, rounds)
	for range rounds {
		total += int64(conns)
		cnt.expect(total)
		t0 := time.Now()
		srv.publish(b, 1, size, volatile)
		select {
		case t := <-cnt.hit:
			lat = append(lat, t.Sub(t0))
		case <-time.After(time.Minute):
			b.Fatalf("delivered %d of %d", cnt.n.Load(), total)
		}
	}
	slices.Sort(lat)
	p99 := lat[len(lat)*99/100-1]
	delivered := float64(5 * burst * conns)
	rate := delivered / elapsed.Seconds()
	cpu := float64(after.CPU-before.CPU) / delivered
	writes := float64(after.Writes-before.Writes) / delivered
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(cpu, "server-cpu-ns/msg")
	b.ReportMetric(writes, "server-writes/msg")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs/broadcast")
	fmt.Printf("%s: %d conns: %.0f msgs/s delivered, server CPU %.0f ns and %.3f writes per delivered message, p50 %v p90 %v p99 %v for one broadcast to reach all\n",
		mode, conns, rate, cpu, writes, lat[len(lat)/2], lat[len(lat)*9/10], p99)
}
