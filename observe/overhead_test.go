package observe_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/observe"
)

// scrapeEvery is how often the runs with metrics gather them: far more
// often than any Prometheus scrapes (15s by default), to make the
// collector's share visible if it had one.
const scrapeEvery = 10 * time.Millisecond

// publishRun is a bus with one at-least-once subscriber on "bench", and,
// with metrics, a collector that is gathered every scrapeEvery.
type publishRun struct {
	b         *bus.Bus
	topic     *bus.Topic[order]
	delivered atomic.Int64
	stop      chan struct{}
	scraper   sync.WaitGroup
	scrapes   atomic.Int64
}

func newPublishRun(tb testing.TB, metrics bool) *publishRun {
	tb.Helper()
	b, err := bus.New()
	if err != nil {
		tb.Fatal(err)
	}
	r := &publishRun{b: b, stop: make(chan struct{})}
	if r.topic, err = bus.NewTopic[order](b, "bench"); err != nil {
		tb.Fatal(err)
	}
	if _, err := r.topic.Subscribe(func(context.Context, bus.Message[order]) error {
		r.delivered.Add(1)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	if metrics {
		col, err := observe.NewCollector(b)
		if err != nil {
			tb.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(col)
		r.scraper.Add(1)
		go func() {
			defer r.scraper.Done()
			t := time.NewTicker(scrapeEvery)
			defer t.Stop()
			for {
				select {
				case <-r.stop:
					return
				case <-t.C:
				}
				if _, err := reg.Gather(); err != nil {
					tb.Error(err)
					return
				}
				r.scrapes.Add(1)
			}
		}()
	}
	return r
}

// publish publishes n messages and waits until they are delivered.
func (r *publishRun) publish(tb testing.TB, n int) {
	want := r.delivered.Load() + int64(n)
	for i := range n {
		r.publishOne(tb, i)
	}
	r.wait(want)
}

func (r *publishRun) publishOne(tb testing.TB, i int) {
	if _, err := r.topic.Publish(context.Background(), order{ID: i}); err != nil {
		tb.Fatal(err)
	}
}

// wait waits until n messages in all were delivered.
func (r *publishRun) wait(n int64) {
	for r.delivered.Load() < n {
		time.Sleep(50 * time.Microsecond)
	}
}

func (r *publishRun) close() {
	close(r.stop)
	r.scraper.Wait()
	r.b.Close()
}

// BenchmarkPublish publishes to one in-process at-least-once subscriber,
// without metrics and with a collector gathered every 10ms:
//
//	go test -run '^$' -bench Publish -count 10 ./observe | tee p.txt
//	benchstat -col /metrics p.txt
func BenchmarkPublish(b *testing.B) {
	for _, metrics := range []bool{false, true} {
		name := "metrics=off"
		if metrics {
			name = "metrics=on"
		}
		b.Run(name, func(b *testing.B) {
			r := newPublishRun(b, metrics)
			defer r.close()
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				r.publishOne(b, n)
				n++
			}
			r.wait(int64(n)) // every message delivered, inside the timing
		})
	}
}

// cpuTime returns the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestPublishOverhead is the overhead bar: in one run, publishing with
// metrics enabled (a collector gathered every 10ms) reaches at least 0.9×
// the throughput without.
//
// Throughput is messages per second of the process's CPU time, which the
// scrapes are part of (as bus/bench_test.go reports cpu-ns/msg): on a
// machine shared with other work, wall-clock rates of this two-goroutine
// pipeline swing by a factor of two from one round to the next, while CPU
// time stays put. The wall-clock ratio is logged beside it. The two runs
// are measured in pairs of short rounds, back to back, in alternating
// order, and the bar applies to the median of the pairs' ratios; a median
// under it is measured again, up to three times in all.
func TestPublishOverhead(t *testing.T) {
	if testing.Short() {
		t.Skip("measures throughput for a few seconds; skipped with -short")
	}
	if raceEnabled {
		t.Skip("throughput is measured without the race detector, which slows the two runs unevenly")
	}
	// Size a round to take about 150ms without metrics.
	cal := newPublishRun(t, false)
	cal.publish(t, 20000) // warm up
	start := time.Now()
	cal.publish(t, 20000)
	per := time.Since(start) / 20000
	cal.close()
	n := max(2000, int(150*time.Millisecond/max(per, time.Nanosecond)))

	type rates struct{ cpu, wall float64 }
	round := func(metrics bool) (r rates, scrapes int64) {
		run := newPublishRun(t, metrics)
		defer run.close()
		run.publish(t, n/10) // warm up
		cpu0, wall0 := cpuTime(), time.Now()
		run.publish(t, n)
		cpu, wall := cpuTime()-cpu0, time.Since(wall0)
		return rates{float64(n) / max(cpu.Seconds(), 1e-9), float64(n) / wall.Seconds()}, run.scrapes.Load()
	}
	const pairs = 11
	measure := func() (median float64, scrapes int64) {
		var cpuRatios, wallRatios []float64
		for i := range pairs {
			var off, on rates
			var sc int64
			if i%2 == 0 {
				off, _ = round(false)
				on, sc = round(true)
			} else {
				on, sc = round(true)
				off, _ = round(false)
			}
			scrapes += sc
			cpuRatios = append(cpuRatios, on.cpu/off.cpu)
			wallRatios = append(wallRatios, on.wall/off.wall)
		}
		slices.Sort(cpuRatios)
		slices.Sort(wallRatios)
		median = cpuRatios[pairs/2]
		t.Logf("%d messages a round, %d pairs, %d scrapes; with/without metrics: CPU throughput ratio median %.3f (%.3f to %.3f), wall-clock ratio median %.3f (%.3f to %.3f)",
			n, pairs, scrapes, median, cpuRatios[0], cpuRatios[pairs-1], wallRatios[pairs/2], wallRatios[0], wallRatios[pairs-1])
		return median, scrapes
	}
	// A median a little under the bar can be the machine's noise: measure
	// again, up to three times in all. Metrics that cost more than the bar
	// stay under it every time.
	var medians []float64
	for range 3 {
		median, scrapes := measure()
		if scrapes == 0 {
			t.Fatal("the runs with metrics never gathered them")
		}
		if median >= 0.9 {
			return
		}
		medians = append(medians, median)
	}
	t.Errorf("publishing with metrics reached %.3f× the throughput without (medians of %d pairs, three measurements), want at least 0.9×", medians, pairs)
}
