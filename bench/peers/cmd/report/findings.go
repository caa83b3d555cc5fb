package main

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/courierbus/courier/bench/internal/bench"
)

// profileFindings is what profiles of the scenarios showed about the bars
// that were missed when it was last written (2026-11-25, on the machine
// of this report); the report prints it when any bar is missed. The
// explanations are the profiles'; the figures quoted beside them are this
// run's. Update it when the code or the figures change.
func profileFindings(res *results) string {
	med := func(k key, metric string) float64 { return res.median(k, metric) }
	span := func(vs ...float64) string {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range vs {
			lo, hi = min(lo, v), max(hi, v)
		}
		if fmt.Sprintf("%.0f", lo) == fmt.Sprintf("%.0f", hi) {
			return fmt.Sprintf("%.0f", lo)
		}
		return fmt.Sprintf("%.0f–%.0f", lo, hi)
	}
	amo := "courier " + bench.AtMostOnce
	busCPU := span(med(key{scInProc, "1to1", amo}, bench.CPUPerMsg), med(key{scInProc, "4to1", amo}, bench.CPUPerMsg))
	chanCPU := span(med(key{scInProc, "1to1", "chan"}, bench.CPUPerMsg), med(key{scInProc, "4to1", "chan"}, bench.CPUPerMsg))
	tenX := res.medianRatio(key{scInProc, "1to10", amo}, bench.MsgsPerSec)
	ws := res.cases(scWS)
	if len(ws) == 0 || res.runs[key{scInProc, "1to1", amo}] == nil {
		return "(The findings need the in-process and WebSocket scenarios in the run.)"
	}
	few, many := ws[0], ws[len(ws)-1]
	c1k, m1k := key{scWS, few, "courier"}, key{scWS, few, "melody"}
	c5k, m5k := key{scWS, many, "courier"}, key{scWS, many, "melody"}
	p99 := bench.Summarize(res.ratios(c1k, m1k, bench.P99Ms))
	var b strings.Builder
	fmt.Fprintf(&b, `- **bus, at-most-once 1 → 1 and 4 → 1 against channels.** The bus spends %s ns of CPU per delivery
  (the medians of this run) where a channel send and receive spend %s ns. Reading the clock for each
  message's time used to be a quarter of that (36 ns per time.Since on these kvm guests); the bus now
  reads it at most once per 500 µs while publishes come fast. What is left, from CPU profiles of
  BenchmarkDelivery in bus/: the subscription queue's mutex, taken by the publisher to add and by the
  worker to take a batch (about a quarter, more with 4 publishers contending for the topic's lock), the
  message itself (a slab of 32 per allocation, filled through GC write barriers while the collector
  runs, which it often does at millions of messages a second), and the handler call with its
  recover. A channel moves a 24-byte value through one runtime lock with no allocation; the bus gives
  every message a sequence number, a time and a place in the topic's history. In 1 → 10 the
  per-publish costs are shared by ten deliveries and the bus delivers %s what channels do. A
  single-producer lock-free queue per subscription is the next thing to try for 1 → 1.
`, busCPU, chanCPU, ratio(tenX))
	fmt.Fprintf(&b, `- **bridge, %s: delivered msgs/s, server CPU and p99 against raw melody.** At %s
  the bridge batches a connection's queued frames into %.2f write system calls per delivery and needs
  %s melody's CPU per delivery in this run. At %s the fan-out of one publish takes long enough that
  the server's one CPU preempts it (every 10 ms) before it has reached every connection, and each
  connection's writer then flushes what it has: in the profiles about 7 messages per write instead of
  30; here %.2f writes per delivery, and the server's profile becomes half write system calls, as
  melody's is. Queueing to every connection before waking the writers made it worse (every writer woke
  at once with one frame). Writing after the fan-out of a whole bus batch, which needs the bus to
  tell a subscriber where its batch ends, is where the rest is. With thousands of Go clients in
  the load-generating process the clients also take CPU from the server: the courier-raw row (the same
  server, raw protocol clients) shows what the server does alone.
`, many, few, med(c1k, bench.WritesPerMsg), ratio(res.medianRatio(c1k, bench.ServerCPUPerMsg)), many, med(c5k, bench.WritesPerMsg))
	fmt.Fprintf(&b, `- **bridge, p99 at %s.** %.1f ms against melody's %.1f ms in the median run; across runs it
  ranges from %s to %s melody's. With 50 samples the p99 is close to the maximum and moves with the
  machine's other load.
`, few, med(c1k, bench.P99Ms), med(m1k, bench.P99Ms), ratio(p99.Min), ratio(p99.Max))
	fmt.Fprintf(&b, `- **bridge, RSS per idle connection.** Measured here each connection has said hello and holds one
  subscription (session, subscription, route entry): %.1f KiB, against raw melody's %.1f KiB for a
  bare connection. The bridge's own memory benchmark (bridge/memory_test.go), with connections that
  have said hello and subscribe to nothing, reports 15.2–15.7 KiB; half of that is the two goroutine
  stacks melody runs per connection.`, med(c5k, bench.RSSPerConn)/1024, med(m5k, bench.RSSPerConn)/1024)
	return b.String()
}

// clusterFindings says what sets the cluster's figures. The explanation
// comes from cluster/cluster.go and a CPU profile of BenchmarkCluster
// (2026-11-25, on the machine of this report; the profile's shares are
// that run's); every other figure is this report's. Update the text when
// cluster.Node's publish path changes.
func clusterFindings(res *results) string {
	const a1, a8, all1 = "C → A, 1 publisher", "C → A, 8 publishers", "C → A+B+C, 1 publisher"
	cl := bench.ClusterR3().Name
	k1 := key{scCluster, a1, cl}
	if res.runs[k1] == nil {
		return ""
	}
	med := func(vs []float64) float64 {
		if len(vs) == 0 {
			return math.NaN()
		}
		return bench.Summarize(vs).Median
	}
	x := func(k key, base key, metric string) string { return farRatio(med(res.ratios(k, base, metric))) }
	rate := res.median(k1, bench.MsgsPerSec)
	cores := med(func() []float64 {
		var vs []float64
		for _, m := range res.runs[k1] {
			if m != nil {
				vs = append(vs, m[bench.CPUPerMsg]*m[bench.MsgsPerSec]/1e9)
			}
		}
		return vs
	}())
	var b strings.Builder
	fmt.Fprintf(&b, "**What sets the cluster's figures.** A publish on node C is a JetStream publish through C's server to\n"+
		"the stream's leader, which writes the message, sends it to the other two servers and acknowledges it once\n"+
		"one of them has it too; C's bus then waits until the message comes back through its own feed, so that a\n"+
		"publish returns with the message in the bus's history, as on one bus. A's feed, an ordered consumer of\n"+
		"the stream like C's, gets it at about the same time. With one publisher that is one message per round trip: %s deliveries/s to A\n"+
		"(%s of one bus's, %s of one bus on buffered persist's), %.0f µs per publish on average; a message\n"+
		"published alone reaches A's handler in a median of %.0f µs and a p99 of %.0f µs. The process used\n"+
		"%.1f of the 2 cores meanwhile, %.0f µs of CPU per\n"+
		"delivery against %.1f µs on one bus: in the CPU profile about 60%% of it is the NATS servers'\n"+
		"goroutines and over a third of everything is read and write system calls on the loopback connections\n"+
		"between servers and clients; Courier's bus and cluster.Node, with the client calls they make, are about\n"+
		"9%%.\n\n",
		human(rate), x(k1, key{scCluster, a1, "bus"}, bench.MsgsPerSec), x(k1, key{scCluster, a1, "bus+persist " + bench.Buffered}, bench.MsgsPerSec),
		1e6/rate, res.median(k1, bench.P50Us), res.median(k1, bench.P99Us), cores, res.median(k1, bench.CPUPerMsg)/1e3,
		res.median(key{scCluster, a1, "bus"}, bench.CPUPerMsg)/1e3)
	fmt.Fprintf(&b, "**Eight publishers** deliver %s what one does: each message carries the topic's next sequence\n"+
		"number and goes with JetStream's expected-last-sequence check, so a node's appends to one topic cannot\n"+
		"overlap; instead, while one batch is on its way the next publishes queue and go together as one\n"+
		"JetStream atomic batch (group commit), so concurrent publishers share the round trip. With a subscriber on\n"+
		"each node every publish makes three deliveries, and delivered msgs/s is %s that of C → A. Synced persist, which\n"+
		"fsyncs every commit, delivers %s what the cluster does with one publisher to A; the cluster's three\n"+
		"copies stand in for the fsync.",
		x(key{scCluster, a8, cl}, k1, bench.MsgsPerSec), x(key{scCluster, all1, cl}, k1, bench.MsgsPerSec),
		x(key{scCluster, a1, "bus+persist " + bench.Synced}, k1, bench.MsgsPerSec))
	return wrap(b.String(), 105)
}

// wrap refills each paragraph of s (paragraphs end in a blank line) to
// lines of at most width runes.
func wrap(s string, width int) string {
	var out []string
	for _, para := range strings.Split(s, "\n\n") {
		var b strings.Builder
		n := 0
		for _, w := range strings.Fields(para) {
			l := utf8.RuneCountInString(w)
			switch {
			case n == 0:
			case n+1+l > width:
				b.WriteByte('\n')
				n = 0
			default:
				b.WriteByte(' ')
				n++
			}
			b.WriteString(w)
			n += l
		}
		out = append(out, b.String())
	}
	return strings.Join(out, "\n\n")
}
