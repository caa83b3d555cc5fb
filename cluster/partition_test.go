package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/cluster"
	"github.com/courierbus/courier/internal/natscluster"
	"github.com/courierbus/courier/internal/tcpproxy"
)

// Three NATS servers whose routes all go through proxies, a bus on each;
// each bus publishes to a topic of its own and to one they share, and
// subscribes to all of them. Again and again, at random moments, one
// server is cut off from the other two (every route to and from it
// blocked) for a random while, then let back. Then:
//
//   - every publish that returned a sequence number is in the stream, with
//     that number and its value, and nothing is in it twice;
//   - every subscriber saw every message of the stream once, in order, under
//     one epoch (nothing was lost, so the epoch does not change);
//   - every publish on the cut-off server's bus made while it was cut off
//     failed with ErrUnavailable.
//
// 4 partitions here; COURIER_LONG=1 runs 20 (docs/reliability.md has the
// figures). COURIER_SEED repeats a run's random choices.
func TestPartitions(t *testing.T) {
	if testing.Short() {
		t.Skip("partitions a NATS cluster")
	}
	rounds := 4
	if os.Getenv("COURIER_LONG") == "1" {
		rounds = 20
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("COURIER_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (COURIER_SEED repeats it), %d partitions", seed, rounds)
	rng := rand.New(rand.NewPCG(seed, 0))
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }

	var pmu sync.Mutex
	proxies := map[[2]int]*tcpproxy.Proxy{}
	ns, err := natscluster.Start(3, t.TempDir(), natscluster.RouteVia(func(from, to int, addr string) string {
		p := tcpproxy.New(t, addr)
		pmu.Lock()
		proxies[[2]int{from, to}] = p
		pmu.Unlock()
		return p.Addr()
	}))
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 2 * time.Second
	tc := newClusterOn(t, ns, cluster.Config{Timeout: timeout})
	const servers = 3
	topics := []string{"part.shared", "part.n0", "part.n1", "part.n2"}

	// Subscribers: one per bus, on every topic.
	type got struct {
		epoch, seq uint64
		val        string
	}
	type sink struct {
		mu  sync.Mutex
		got map[string][]got
	}
	sinks := make([]*sink, servers)
	for i := range servers {
		s := &sink{got: map[string][]got{}}
		sinks[i] = s
		if _, err := tc.bus(i).Subscribe("part.>", func(_ context.Context, m bus.Message[any]) error {
			data, err := m.Data()
			var v string
			if err == nil {
				err = json.Unmarshal(data, &v)
			}
			if err != nil {
				t.Errorf("bus %d: %s seq %d: %v", i, m.Topic(), m.Seq(), err)
			}
			s.mu.Lock()
			s.got[m.Topic()] = append(s.got[m.Topic()], got{m.Position().Epoch, m.Seq(), v})
			s.mu.Unlock()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	// Publishers: two per bus, one on the shared topic and one on the
	// bus's own, each paced.
	type outcome struct {
		bus        int
		topic, val string
		seq        uint64
		err        error
		start, end time.Time
	}
	var (
		omu      sync.Mutex
		outcomes []outcome
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for i := range servers {
		for _, name := range []string{topics[0], topics[1+i]} {
			tp, err := bus.NewTopic[string](tc.bus(i), name)
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				tick := time.NewTicker(5 * time.Millisecond)
				defer tick.Stop()
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					o := outcome{bus: i, topic: name, val: fmt.Sprintf("%d-%s-%d", i, name, k), start: time.Now()}
					ctx, cancel := context.WithTimeout(context.Background(), 5*timeout)
					o.seq, o.err = tp.Publish(ctx, o.val)
					cancel()
					o.end = time.Now()
					omu.Lock()
					outcomes = append(outcomes, o)
					omu.Unlock()
				}
			})
		}
	}

	// The partitions.
	type window struct {
		server   int
		from, to time.Time
	}
	var windows []window
	var back time.Duration // the longest a bus took to publish again after being let back
	setBlocked := func(k int, blocked bool) {
		pmu.Lock()
		defer pmu.Unlock()
		for j := range servers {
			if j == k {
				continue
			}
			for _, p := range []*tcpproxy.Proxy{proxies[[2]int{k, j}], proxies[[2]int{j, k}]} {
				if blocked {
					p.Block()
				} else {
					p.Unblock()
				}
			}
		}
	}
	waitRoutes := func(what string, k int, cond func(n int) bool) {
		deadline := time.Now().Add(30 * time.Second)
		for !cond(ns.Routes(k)) {
			if time.Now().After(deadline) {
				t.Fatalf("server %d: %s: it has %d routes", k, what, ns.Routes(k))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// pause lets the publishers run for d: the schedule of the partitions,
	// random by design, not a wait for a condition.
	pause := time.Sleep
	for range rounds {
		pause(between(500*time.Millisecond, 3*time.Second))
		k := rng.IntN(servers)
		setBlocked(k, true)
		// Every route of server k goes through the proxies: cut off, it
		// has none left.
		waitRoutes("cut off", k, func(n int) bool { return n == 0 })
		w := window{server: k, from: time.Now()}
		pause(between(time.Second, 6*time.Second))
		w.to = time.Now()
		windows = append(windows, w)
		setBlocked(k, false)
		waitRoutes("let back", k, func(n int) bool { return n > 0 })
		// Its bus publishes again, by itself.
		deadline := time.Now().Add(60 * time.Second)
		for again := false; !again; {
			if time.Now().After(deadline) {
				t.Fatalf("bus %d published nothing for a minute after its server was let back", k)
			}
			time.Sleep(5 * time.Millisecond)
			omu.Lock()
			for _, o := range slices.Backward(outcomes) {
				if o.start.Before(w.to) {
					break
				}
				if o.bus == k && o.err == nil {
					again = true
					back = max(back, o.end.Sub(w.to))
				}
			}
			omu.Unlock()
		}
	}
	pause(time.Second)
	close(stop)
	wg.Wait()
	if err := ns.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	// Classify the publishes.
	var acked, failed, minority int
	var minorityWrong []outcome
	for _, o := range outcomes {
		if o.err == nil {
			acked++
		} else {
			failed++
		}
		for _, w := range windows {
			if w.server == o.bus && !o.start.Before(w.from) && !o.end.After(w.to) {
				minority++
				if !errors.Is(o.err, cluster.ErrUnavailable) {
					minorityWrong = append(minorityWrong, o)
				}
			}
		}
	}
	for _, o := range minorityWrong {
		t.Errorf("bus %d, cut off, published %s %q: got seq %d, err %v; want ErrUnavailable", o.bus, o.topic, o.val, o.seq, o.err)
	}
	if minority == 0 {
		t.Fatal("no publish was made on a cut-off server's bus")
	}

	// The stream holds every acknowledged publish, once, in order.
	node := tc.nodes[0].node
	stream := map[string][]bus.Record{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		missing := ""
		for _, tp := range topics {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			recs, err := node.Read(ctx, tp, 1, 1<<30, nil)
			cancel()
			if err != nil {
				missing = err.Error()
				break
			}
			stream[tp] = recs
		}
		if missing == "" {
			for _, o := range outcomes {
				if o.err != nil {
					continue
				}
				recs := stream[o.topic]
				if o.seq > uint64(len(recs)) || recs[o.seq-1].Seq != o.seq {
					missing = fmt.Sprintf("%s seq %d (%q) is not in the stream (%d there)", o.topic, o.seq, o.val, len(recs))
					break
				}
				var v string
				json.Unmarshal(recs[o.seq-1].Data, &v)
				if v != o.val {
					t.Fatalf("%s seq %d: acknowledged %q, the stream has %q", o.topic, o.seq, o.val, v)
				}
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acknowledged and lost: %s", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stored := 0
	for _, tp := range topics {
		seen := map[string]uint64{}
		for i, r := range stream[tp] {
			if r.Seq != uint64(i+1) {
				t.Fatalf("%s: record %d has seq %d", tp, i, r.Seq)
			}
			if at, ok := seen[string(r.Data)]; ok {
				var o outcome
				for _, x := range outcomes {
					if x.topic == tp && `"`+x.val+`"` == string(r.Data) {
						o = x
					}
				}
				t.Errorf("%s: %s is in the stream twice, at seq %d and %d; its publish took %v and returned seq %d, err %v",
					tp, r.Data, at, r.Seq, o.end.Sub(o.start), o.seq, o.err)
				dumpStream(t, ns.URL(0), tp, at, r.Seq)
				t.FailNow()
			}
			seen[string(r.Data)] = r.Seq
		}
		stored += len(stream[tp])
	}

	// Every subscriber saw the stream, once, in order, under one epoch.
	epoch := node.Epoch()
	for i, s := range sinks {
		for _, tp := range topics {
			want := stream[tp]
			deadline := time.Now().Add(60 * time.Second)
			for {
				s.mu.Lock()
				n := len(s.got[tp])
				s.mu.Unlock()
				if n >= len(want) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("bus %d, %s: %d of %d messages delivered", i, tp, n, len(want))
				}
				time.Sleep(10 * time.Millisecond)
			}
			s.mu.Lock()
			have := slices.Clone(s.got[tp])
			s.mu.Unlock()
			if len(have) != len(want) {
				t.Fatalf("bus %d, %s: %d deliveries of %d messages", i, tp, len(have), len(want))
			}
			for k, g := range have {
				var v string
				json.Unmarshal(want[k].Data, &v)
				if g.seq != want[k].Seq || g.val != v || g.epoch != epoch {
					t.Fatalf("bus %d, %s: delivery %d is (epoch %d, seq %d, %q), the stream's (epoch %d, seq %d, %q)",
						i, tp, k, g.epoch, g.seq, g.val, epoch, want[k].Seq, v)
				}
			}
		}
	}
	var cut time.Duration
	for _, w := range windows {
		cut += w.to.Sub(w.from)
	}
	t.Logf("%d partitions, cut off %v in all; %d publishes: %d acknowledged (all in the stream), %d failed, of which %d on a cut-off bus (all ErrUnavailable); "+
		"a cut-off bus published again at most %v after being let back; %d stored; 3 subscribers saw all %d once, in order, under one epoch",
		len(windows), cut.Round(time.Millisecond), len(outcomes), acked, failed, minority, back.Round(time.Millisecond), stored, stored)
}

// dumpStream logs the messages of topic whose Courier sequence numbers are
// between from and to, with their stream sequences and headers: what a
// failure needs to be understood.
func dumpStream(t *testing.T, url, topic string, from, to uint64) {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Log(err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Log(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "COURIER")
	if err != nil {
		t.Log(err)
		return
	}
	for at := uint64(1); ; {
		m, err := st.GetMsg(ctx, at, jetstream.WithGetMsgSubject("courier.m."+topic))
		if err != nil {
			t.Log(err)
			return
		}
		at = m.Sequence + 1
		seq, _ := strconv.ParseUint(m.Header.Get("Courier-Seq"), 10, 64)
		if seq+2 >= from && seq <= to+2 {
			t.Logf("stream %d %s %v %s", m.Sequence, m.Time.Format(time.RFC3339Nano), m.Header, m.Data)
		}
		if seq > to+2 {
			return
		}
	}
}
