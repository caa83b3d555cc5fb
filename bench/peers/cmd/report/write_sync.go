package main

import (
	"fmt"

	"github.com/courierbus/courier/bench/internal/bench"
)

// syncSection writes the sync-cost scenario's section, if it ran.
func syncSection(p func(string, ...any), t table, res *results) {
	ks := res.keysOf(scSync)
	if len(ks) == 0 {
		return
	}
	p("## The cost of sync always\n\n")
	p("The cluster scenario's C → A cases on two clusters started side by side for each round: %d nats-server\n", bench.ClusterNodes)
	p("processes (the go.mod's version) with the stream at R%d, one with JetStream's default sync (an fsync every\n", bench.ClusterReplicas)
	p("two minutes) and one with `sync_interval: always` (an fsync per write, which docs/cluster.md asks of\n")
	p("production servers: with the default, a power cut of the servers loses acknowledged writes). The buses\n")
	p("run in the report's process; the servers' files are on the machine's disk. Each case runs on both in the\n")
	p("same round, default first; × default is the ratio to the default in that round. Sizes as in the cluster\n")
	p("scenario.\n\n")
	t.head("case", "servers", "delivered msgs/s", "× default", "p50 µs", "p99 µs", "p50 × default", "p99 loaded µs")
	for _, cs := range res.cases(scSync) {
		for _, k := range ks {
			if k.cas != cs {
				continue
			}
			t.row(cs, k.impl+res.failures(k), res.cell(k, bench.MsgsPerSec, human), res.ratioCellF(k, bench.MsgsPerSec, farRatio),
				res.cell(k, bench.P50Us, fixed(0)), res.cell(k, bench.P99Us, fixed(0)), res.ratioCellF(k, bench.P50Us, farRatio),
				res.cell(k, bench.LoadP99Us, fixed(0)))
		}
	}
	p("\n")
}

// syncSummary says, in one line, what sync always costs in msgs/s, for
// the command's progress output.
func syncSummary(res *results) string {
	var s string
	for _, cs := range res.cases(scSync) {
		k := key{scSync, cs, bench.ClusterProcs(bench.SyncAlways).Name}
		base := key{scSync, cs, bench.ClusterProcs(bench.DefaultSync).Name}
		vs := res.ratios(k, base, bench.MsgsPerSec)
		if len(vs) == 0 {
			continue
		}
		s += fmt.Sprintf("%s: sync always %s of default; ", cs, farRatio(bench.Summarize(vs).Median))
	}
	return s
}
