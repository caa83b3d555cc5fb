package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/courierbus/courier/bench/internal/bench"
)

// write writes benchmarks.md, its charts and benchmarks.csv into cfg.out
// and returns the files' paths.
func write(cfg config, res *results, m bench.Machine) ([]string, error) {
	var files []string
	csvPath := filepath.Join(cfg.out, "benchmarks.csv")
	if err := writeCSV(csvPath, res); err != nil {
		return nil, err
	}
	files = append(files, csvPath)
	charts, err := writeCharts(cfg.out, cfg.format, res)
	if err != nil {
		return nil, err
	}
	files = append(files, charts...)
	md := markdown(cfg, res, m)
	mdPath := filepath.Join(cfg.out, "benchmarks.md")
	if err := os.WriteFile(mdPath, []byte(md), 0o644); err != nil {
		return nil, err
	}
	return append(files, mdPath), nil
}

// writeCSV writes one line per run and metric, with the baseline's value
// in the same round and the ratio.
func writeCSV(path string, res *results) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"scenario", "case", "impl", "run", "metric", "value", "baseline_impl", "baseline_value", "ratio"})
	for _, k := range res.order {
		base, hasBase := res.baselineKey(k)
		for round, m := range res.runs[k] {
			if m == nil {
				continue
			}
			names := make([]string, 0, len(m))
			for n := range m {
				names = append(names, n)
			}
			slices.Sort(names)
			for _, n := range names {
				rec := []string{k.scenario, k.cas, k.impl, strconv.Itoa(round + 1), n, fmtFloat(m[n]), "", "", ""}
				if hasBase && base != k && round < len(res.runs[base]) && res.runs[base][round] != nil {
					if bv, ok := res.runs[base][round][n]; ok {
						rec[6], rec[7] = base.impl, fmtFloat(bv)
						if bv != 0 {
							rec[8] = fmtFloat(m[n] / bv)
						}
					}
				}
				w.Write(rec)
			}
		}
	}
	w.Flush()
	return errors2(w.Error(), f.Close())
}

func markdown(cfg config, res *results, m bench.Machine) string {
	var b strings.Builder
	t := table{&b}
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Benchmarks\n\n")
	p("What Courier costs, against what you would use instead, measured in one run of\n\n")
	p("```sh\ncd bench/peers && go run ./cmd/report\n```\n\n")
	p("which regenerates this page, its charts and [benchmarks.csv](benchmarks.csv) (every run of every figure).\n")
	p("Scenarios are Go code in [bench/internal/bench/](../bench/internal/bench) (Courier and the baselines) and\n")
	p("[bench/peers/](../bench/peers) (the other libraries, a module of its own); each also runs as a Go benchmark\n")
	p("(`go test -bench . ./bench`, `cd bench/peers && go test -bench .`).\n\n")
	p("| | |\n| --- | --- |\n")
	p("| date | %s |\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	p("| CPU | %s, %d cores |\n", m.CPU, m.Cores)
	p("| memory | %s |\n", m.Memory)
	p("| Go | %s, %s |\n", m.Go, m.OS)
	p("| runs | %d of every figure, interleaved round by round; the report took %v |\n\n", res.runsN, res.elapsed.Round(time.Second))
	p("Every figure is the median of its runs with [min–max]. Every ratio (×) is taken run by run against the\n")
	p("baseline measured in the same round, then summarized the same way: the machine is shared and noisy,\n")
	p("so absolute figures move between runs more than ratios do.")
	if cfg.quick {
		p(" **This report was made with -quick: the runs are far too small to mean anything.**")
	}
	p("\n\n")

	p("## Bars\n\nThe figures the other issues ask for, from the runs below.\n\n")
	t.head("issue", "bar", "required", "measured", "met")
	missed := 0
	for _, br := range bars(res) {
		vs := br.values(res)
		met := "—"
		if br.op != "" && len(vs) > 0 {
			med := bench.Summarize(vs).Median
			if (br.op == "≥" && med >= br.limit) || (br.op == "≤" && med <= br.limit) {
				met = "**met**"
			} else {
				met = "**missed**"
				missed++
			}
		}
		req := ""
		if br.op != "" {
			req = br.op + " " + br.format(br.limit)
		}
		p("| %s | %s | %s | %s | %s |\n", br.issue, br.what, req, stat(vs, br.format), met)
	}
	p("\n%s\n\n", barNotes)

	// In-process.
	if ks := res.keysOf(scInProc); len(ks) > 0 {
		p("## In-process delivery\n\n")
		p("A small struct (`bench.Event`) from P publishers to S subscribers, each subscriber getting every\n")
		p("message: 1→1, 1→10 and 4→1. msgs/s counts deliveries per second of wall time; CPU is the process's\n")
		p("user+system time per delivery (on 2 cores the two can differ by up to 2×); allocs are heap\n")
		p("allocations per delivery. Up to %s deliveries or %v per run. Every implementation's handler\n", "3M", "0.3 s")
		p("counts with one uncontended atomic add, the baseline's included.\n\n")
		p("![in-process throughput relative to channels](benchmarks-inproc.%s)\n\n", cfg.format)
		for _, cs := range res.cases(scInProc) {
			p("### %s\n\n", shapeTitle(cs))
			inprocTable(t, res, scInProc, cs)
			p("\n%s\n\n", modes(res, scInProc, cs))
		}
	}
	if ks := res.keysOf(scRooms); len(ks) > 0 {
		p("## Rooms\n\n")
		p("1000 members in 10 rooms, one subscription each; every publish addressed to one room (100\n")
		p("deliveries). Courier uses `To(\"r3\")` with volatile subscriptions; the channel baseline sends to\n")
		p("the 100 channels of that room; the peers, which have no rooms, publish to a topic per room.\n\n")
		for _, cs := range res.cases(scRooms) {
			inprocTable(t, res, scRooms, cs)
		}
		p("\n")
	}

	// Persisted publish.
	if ks := res.keysOf(scPersist); len(ks) > 0 {
		p("## Persisted publish\n\n")
		p("64-byte records to one topic from 1, 16 and 64 concurrent publishers, each publish returning once\n")
		p("its record is committed: synced (flushed to disk, survives a power cut) or buffered (survives a\n")
		p("process crash). The baseline is raw Badger WriteBatch of records of the same size with persist's\n")
		p("Badger options, one writer, no sync: the most Badger can take. Up to 300k records or 0.8 s per\n")
		p("run, a fresh directory each.\n\n")
		p("![persisted publish relative to raw Badger WriteBatch](benchmarks-persist.%s)\n\n", cfg.format)
		t.head("mode, publishers", "implementation", "records/s", "× WriteBatch", "CPU µs/record", "allocs/record")
		for _, k := range ks {
			if k.cas != "" {
				continue
			}
			t.row("(baseline)", k.impl+res.failures(k), res.cell(k, bench.MsgsPerSec, human), "1",
				res.cell(k, bench.CPUPerMsg, scaled(1e3, 1)), res.cell(k, bench.AllocsPerMsg, fixed(1)))
		}
		for _, cs := range res.cases(scPersist) {
			for _, k := range ks {
				if k.cas != cs {
					continue
				}
				t.row(cs, k.impl+res.failures(k), res.cell(k, bench.MsgsPerSec, human), res.ratioCell(k, bench.MsgsPerSec),
					res.cell(k, bench.CPUPerMsg, scaled(1e3, 1)), res.cell(k, bench.AllocsPerMsg, fixed(1)))
			}
		}
		p("\n")
	}
	if ks := res.keysOf(scReplay); len(ks) > 0 {
		p("## Replay\n\n")
		p("A topic of 64-byte records read from the first, as a consumer catching up does (the store filled\n")
		p("beforehand, not measured; page cache warm).\n\n")
		t.head("implementation", "records/s", "× Badger iterator", "CPU ns/record", "allocs/record")
		for _, k := range ks {
			t.row(k.impl+res.failures(k), res.cell(k, bench.MsgsPerSec, human), res.ratioCell(k, bench.MsgsPerSec),
				res.cell(k, bench.CPUPerMsg, fixed(0)), res.cell(k, bench.AllocsPerMsg, fixed(2)))
		}
		p("\n")
	}
	if ks := res.keysOf(scRestart); len(ks) > 0 {
		p("## Restart\n\n")
		p("A store filled with %s 64-byte records over %d topics (buffered, 64 appenders), closed, then opened in\n",
			strings.TrimSuffix(res.cases(scRestart)[0], " records"), bench.RestartTopics)
		p("a fresh process: the time to open it and to know every topic's state, and the process's resident\n")
		p("set right after. \"none\" is the same process opening nothing; \"badger\" a raw `badger.Open` of the\n")
		p("same directory with persist's options.\n\n")
		t.head("opening", "open ms", "ready ms", "× Badger open", "RSS MiB")
		for _, k := range ks {
			t.row(k.impl+res.failures(k), res.cell(k, bench.OpenMs, fixed(0)), res.cell(k, bench.ReadyMs, fixed(0)),
				ifBase(res, k, bench.ReadyMs, bench.OpenMs), res.cell(k, bench.RSSMiB, fixed(1)))
		}
		p("\n")
	}

	// WebSocket.
	if ks := res.keysOf(scWS); len(ks) > 0 {
		p("## WebSocket broadcast\n\n")
		p("The server runs in a child process on 127.0.0.1 (the report binary re-executed), so that its CPU time\n")
		p("(from /proc/<pid>/stat) and resident set are its own; the clients run in the report's process on the\n")
		p("same 2 cores. Every client subscribes to one topic or channel; the server publishes a ~100-byte JSON\n")
		p("event to it, encoded as each library's users would. Throughput: up to 100k broadcasts in batches of\n")
		p("32, at most two batches in flight (so that no library's per-connection queue overflows), for up to\n")
		p("2 s. Latency: then up to 50 broadcasts one at a time, each timed from the server's clock before\n")
		p("publishing to the last client's arrival (the same machine's clock); p99 of 50 is close to the\n")
		p("maximum. Server writes/msg counts the server's write system calls (/proc/<pid>/io) per delivered\n")
		p("message: 1 when every frame is written alone, less when a connection's frames are batched. RSS per\n")
		p("idle connection: the server's resident set (after a GC and returning freed memory\n")
		p("to the OS) with every client connected and subscribed, less the same before any connected, divided by\n")
		p("the clients.\n\n")
		p("![WebSocket delivered msgs/s relative to melody](benchmarks-ws.%s)\n\n![p99 time for one broadcast to reach every client](benchmarks-ws-p99.%s)\n\n", cfg.format, cfg.format)
		for _, cs := range res.cases(scWS) {
			p("### %s\n\n", cs)
			t.head("implementation", "delivered msgs/s", "× melody", "server CPU ns/msg", "× melody", "server writes/msg", "p50 ms", "p99 ms", "p99 × melody", "RSS/idle conn KiB", "connect s")
			for _, k := range ks {
				if k.cas != cs {
					continue
				}
				t.row(k.impl+res.failures(k), res.cell(k, bench.MsgsPerSec, human), res.ratioCell(k, bench.MsgsPerSec),
					res.cell(k, bench.ServerCPUPerMsg, fixed(0)), res.ratioCell(k, bench.ServerCPUPerMsg), res.cell(k, bench.WritesPerMsg, fixed(2)),
					res.cell(k, bench.P50Ms, fixed(1)), res.cell(k, bench.P99Ms, fixed(1)), res.ratioCell(k, bench.P99Ms),
					res.cell(k, bench.RSSPerConn, scaled(1024, 1)), res.cell(k, bench.ConnectSec, fixed(1)))
			}
			p("\n")
		}
	}
	if ks := res.keysOf(scRT); len(ks) > 0 {
		p("## Acknowledged round trip\n\n")
		p("One client speaking each server's browser protocol as raw JSON frames over gorilla/websocket sends a\n")
		p("message and waits for the answer, one at a time, up to 5000 or 1 s: for Courier a `publish` with an\n")
		p("id answered by `puback` once the message is in the topic's history (docs/protocol.md §7), for\n")
		p("Centrifuge a `publish` command answered by its reply, for raw melody an echo of the frame (no\n")
		p("protocol at all: the floor).\n\n")
		t.head("implementation", "round trips/s", "× melody", "p50 µs", "p99 µs", "server CPU µs/round trip")
		for _, k := range ks {
			t.row(k.impl+res.failures(k), res.cell(k, bench.RTPerSec, human), res.ratioCell(k, bench.RTPerSec),
				res.cell(k, bench.P50Us, fixed(0)), res.cell(k, bench.P99Us, fixed(0)), res.cell(k, bench.ServerCPUPerRT, scaled(1e3, 0)))
		}
		p("\n")
	}

	if ks := res.keysOf(scCluster); len(ks) > 0 {
		p("## Cluster\n\n")
		p("Three buses, each joined through a `cluster.Node` to its own server of a %d-server NATS cluster, the\n", bench.ClusterNodes)
		p("stream on JetStream file storage with **%d replicas (R%d)**: a publish returns once the stream's leader\n", bench.ClusterReplicas, bench.ClusterReplicas)
		p("has the message on a majority of the servers and the publishing bus has it back from the stream. The\n")
		p("servers and buses all run in the report's process on 127.0.0.1 (every hop a loopback TCP connection),\n")
		p("sharing its 2 cores. Publishers on node C publish a small struct (`bench.Stamped`, JSON) to one topic,\n")
		p("from 1 or 8 goroutines; one default (at-least-once) subscription on node A, or one on each node. The\n")
		p("same case on **one bus**, every publisher and subscriber on it, is the baseline (the single-node figures\n")
		p("of the same round), with no store and on persist: buffered, like JetStream's default file storage (no\n")
		p("fsync per message; a cluster's copies on three servers are its durability), and synced (fsync per\n")
		p("commit).\n\n")
		p("Throughput: up to 300k publishes or 0.5 s per run; delivered msgs/s counts every subscriber's deliveries.\n")
		p("CPU is the whole process's per delivery: for the cluster, three NATS servers and three buses. Latency:\n")
		p("then up to 200 publishes one at a time (or 1 s), each timed from just before `Publish` to the start of\n")
		p("each subscriber's handler, on the process's monotonic clock; p50 and p99 are over every delivery.\n")
		p("\"p99 loaded\" is the same time over the throughput run's deliveries, queueing included: on one bus it is\n")
		p("mostly the time a subscription's 1024-message queue takes to drain behind a faster publisher.\n\n")
		t.head("case", "implementation", "delivered msgs/s", "× bus", "p50 µs", "p99 µs", "p50 × bus", "p99 loaded µs", "CPU µs/msg", "allocs/msg")
		for _, cs := range res.cases(scCluster) {
			for _, k := range ks {
				if k.cas != cs {
					continue
				}
				t.row(cs, k.impl+res.failures(k), res.cell(k, bench.MsgsPerSec, human), res.ratioCellF(k, bench.MsgsPerSec, farRatio),
					res.cell(k, bench.P50Us, fixed(0)), res.cell(k, bench.P99Us, fixed(0)), res.ratioCellF(k, bench.P50Us, farRatio),
					res.cell(k, bench.LoadP99Us, fixed(0)), res.cell(k, bench.CPUPerMsg, scaled(1e3, 1)), res.cell(k, bench.AllocsPerMsg, fixed(1)))
			}
		}
		p("\n%s\n\n", clusterFindings(res))
	}
	syncSection(p, t, res)

	p("## How each implementation is used\n\n")
	names := make([]string, 0, len(res.notes))
	for n := range res.notes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		p("- **%s**: %s.\n", n, res.notes[n])
	}
	p("\n%s\n", methodNotes)
	if missed > 0 {
		p("\n%s\n", limitsNotes+profileFindings(res))
	}
	if table, err := os.ReadFile(filepath.Join(cfg.out, benchstatFile)); err == nil {
		p("\n%s\n```\n%s```\n", benchstatNotes, table)
	}
	return b.String()
}

// benchstatFile, beside this page, holds the bus's delivery benchmarks in
// ten runs through benchstat; the report includes it when it is there.
const benchstatFile = "benchmarks-bus-benchstat.txt"

const benchstatNotes = `## The bus in ten runs (benchstat)

The in-process figures above are three runs each. The bus's own benchmarks, with the channel
baseline beside each shape, in ten runs summarized by benchstat (ratios are against the chan
column; the channel baseline's fast and slow modes show as its spread):

` + "```sh\n" + `go test -run '^$' -bench Delivery -count 10 ./bus > d.txt
benchstat -col /impl d.txt > docs/benchmarks-bus-benchstat.txt
` + "```"

func ifBase(res *results, k key, metric, baseMetric string) string {
	base, ok := res.baselineKey(k)
	if !ok || k.impl == "none" {
		return ""
	}
	if base == k {
		return "1 (baseline)"
	}
	a, bb := res.runs[k], res.runs[base]
	var vs []float64
	for i := range min(len(a), len(bb)) {
		if a[i] != nil && bb[i] != nil && bb[i][baseMetric] != 0 {
			vs = append(vs, a[i][metric]/bb[i][baseMetric])
		}
	}
	return stat(vs, ratio)
}

func shapeTitle(cs string) string {
	switch cs {
	case "1to1":
		return "1 → 1"
	case "1to10":
		return "1 → 10"
	case "4to1":
		return "4 → 1"
	}
	return cs
}

func inprocTable(t table, res *results, sc, cs string) {
	t.head("implementation", "delivered msgs/s", "× chan", "CPU ns/msg", "allocs/msg", "runs (msgs/s)")
	for _, k := range res.keysOf(sc) {
		if k.cas != cs {
			continue
		}
		var runs []string
		for _, m := range res.runs[k] {
			if m == nil {
				runs = append(runs, "failed")
			} else {
				runs = append(runs, human(m[bench.MsgsPerSec]))
			}
		}
		t.row(k.impl+res.failures(k), res.cell(k, bench.MsgsPerSec, human), res.ratioCell(k, bench.MsgsPerSec),
			res.cell(k, bench.CPUPerMsg, fixed(0)), res.cell(k, bench.AllocsPerMsg, fixed(3)), strings.Join(runs, ", "))
	}
}

// fastChannels is the line between the channel baseline's two modes on
// these machines (about 5M and 22M deliveries/s).
const fastChannels = 12e6

// modes says, run by run, which mode the channel baseline and the bus were
// in.
func modes(res *results, sc, cs string) string {
	chanK := key{sc, cs, "chan"}
	var parts []string
	for i, m := range res.runs[chanK] {
		if m == nil {
			continue
		}
		v := m[bench.MsgsPerSec]
		mode := "slow"
		if v >= fastChannels {
			mode = "fast"
		}
		s := fmt.Sprintf("run %d: chan %s (%s mode)", i+1, human(v), mode)
		for _, mo := range []string{bench.AtMostOnce, bench.AtLeastOnce} {
			if rs := res.runs[key{sc, cs, "courier " + mo}]; i < len(rs) && rs[i] != nil {
				s += fmt.Sprintf(", courier %s %s", mo, human(rs[i][bench.MsgsPerSec]))
			}
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return ""
	}
	return "Channel baseline mode (fast ≈ 20M+/s, slow ≈ 5M/s on these machines) and the bus in the same round: " +
		strings.Join(parts, "; ") + "."
}

// bar is a figure another issue asks for.
type bar struct {
	issue, what string
	k           key
	base        *key    // ratio against this key's run in the same round; nil: absolute
	metric      string  // of k (and base)
	scale       float64 // absolute values are divided by it
	op          string  // "≥", "≤", or "" for a figure without a bar
	limit       float64
	format      func(float64) string
}

func (br bar) values(res *results) []float64 {
	if br.base != nil {
		return res.ratios(br.k, *br.base, br.metric)
	}
	vs := res.values(br.k, br.metric)
	for i := range vs {
		vs[i] /= br.scale
	}
	return vs
}

func bars(res *results) []bar {
	var bs []bar
	wsCases := res.cases(scWS)
	persistCases := res.cases(scPersist)
	// bus
	for _, sh := range bench.Shapes() {
		k := key{scInProc, sh.Name, "courier " + bench.AtMostOnce}
		if _, ok := res.runs[k]; !ok {
			continue
		}
		base := key{scInProc, sh.Name, "chan"}
		bs = append(bs, bar{issue: "bus", what: "at-most-once " + shapeTitle(sh.Name) + ": delivered msgs/s ÷ channels", k: k, base: &base,
			metric: bench.MsgsPerSec, op: "≥", limit: 1.0, format: ratio})
	}
	for _, sh := range bench.Shapes() {
		k := key{scInProc, sh.Name, "courier " + bench.AtMostOnce}
		if _, ok := res.runs[k]; !ok {
			continue
		}
		bs = append(bs, bar{issue: "bus", what: "at-most-once " + shapeTitle(sh.Name) + ": allocations per delivered message (0; the slab's 1/32 per publish allowed)",
			k: k, metric: bench.AllocsPerMsg, scale: 1, op: "≤", limit: 0.05, format: fixed(3)})
	}
	if k := (key{scInProc, "1to1", "courier " + bench.AtLeastOnce}); res.runs[k] != nil {
		base := key{scInProc, "1to1", "chan"}
		bs = append(bs,
			bar{issue: "bus", what: "at-least-once 1 → 1: delivered msgs/s ÷ channels", k: k, base: &base, metric: bench.MsgsPerSec, op: "≥", limit: 0.5, format: ratio},
			bar{issue: "bus", what: "at-least-once 1 → 1: allocations per delivered message", k: k, metric: bench.AllocsPerMsg, scale: 1, op: "≤", limit: 1, format: fixed(3)},
			bar{issue: "bus", what: "at-least-once 1 → 1: CPU ns per delivered message ÷ channels (shown, no bar)", k: k, base: &base, metric: bench.CPUPerMsg, format: ratio},
		)
	}
	// persist
	if len(persistCases) > 0 {
		pubs := persistCases[len(persistCases)-1]
		_, n, _ := strings.Cut(pubs, ", ")
		wb := key{scPersist, "", "badger-writebatch"}
		bs = append(bs, bar{issue: "persist", what: "buffered Append, " + n + ": records/s ÷ raw Badger WriteBatch", k: key{scPersist, "buffered, " + n, "courier-append"},
			base: &wb, metric: bench.MsgsPerSec, op: "≥", limit: 0.7, format: ratio})
		one := key{scPersist, persistCases[0], "courier-append"}
		bs = append(bs, bar{issue: "persist", what: "synced Append, " + n + " ÷ synced, " + strings.TrimPrefix(persistCases[0], "synced, "), k: key{scPersist, "synced, " + n, "courier-append"},
			base: &one, metric: bench.MsgsPerSec, op: "≥", limit: 10, format: ratio})
		js := key{scPersist, "synced, " + n, "jetstream"}
		bs = append(bs, bar{issue: "persist", what: "synced Append, " + n + " ÷ JetStream file storage SyncAlways, " + n + " (comparison)", k: key{scPersist, "synced, " + n, "courier-append"},
			base: &js, metric: bench.MsgsPerSec, format: ratio})
	}
	if cs := res.cases(scRestart); len(cs) > 0 {
		k := key{scRestart, cs[0], "courier"}
		bs = append(bs,
			bar{issue: "persist", what: "restart, " + cs[0] + ": reopen until every topic is known, ms", k: k, metric: bench.ReadyMs, scale: 1, format: fixed(0)},
			bar{issue: "persist", what: "restart, " + cs[0] + ": RSS after reopening, MiB", k: k, metric: bench.RSSMiB, scale: 1, format: fixed(1)})
	}
	// cluster
	cl := bench.ClusterR3().Name
	for i, cs := range res.cases(scCluster) {
		if !strings.HasPrefix(cs, "C → A,") {
			continue // the other cases are in the cluster section
		}
		k, base := key{scCluster, cs, cl}, key{scCluster, cs, "bus"}
		bs = append(bs,
			bar{issue: "cluster", what: cs + ": cross-node delivered msgs/s, " + cl + " (shown, no bar)", k: k, metric: bench.MsgsPerSec, scale: 1, format: human},
			bar{issue: "cluster", what: cs + ": delivered msgs/s ÷ one bus", k: k, base: &base, metric: bench.MsgsPerSec, format: farRatio})
		if i == 0 {
			bs = append(bs,
				bar{issue: "cluster", what: cs + ": p50 µs, publish → handler, one message at a time", k: k, metric: bench.P50Us, scale: 1, format: fixed(0)},
				bar{issue: "cluster", what: cs + ": p99 µs, the same", k: k, metric: bench.P99Us, scale: 1, format: fixed(0)})
		}
	}
	// bridge
	for _, cs := range wsCases {
		k, base := key{scWS, cs, "courier"}, key{scWS, cs, "melody"}
		bs = append(bs, bar{issue: "bridge", what: "broadcast, " + cs + ": delivered msgs/s ÷ raw melody", k: k, base: &base, metric: bench.MsgsPerSec, op: "≥", limit: 1.5, format: ratio})
	}
	for _, cs := range wsCases {
		k, base := key{scWS, cs, "courier-raw"}, key{scWS, cs, "melody"}
		if res.runs[k] != nil {
			bs = append(bs, bar{issue: "bridge", what: "(the same server with raw protocol clients, courier-raw, for comparison), " + cs, k: k, base: &base, metric: bench.MsgsPerSec, format: ratio})
		}
	}
	for _, cs := range wsCases {
		k, base := key{scWS, cs, "courier"}, key{scWS, cs, "melody"}
		bs = append(bs, bar{issue: "bridge", what: "broadcast, " + cs + ": server CPU per delivered message ÷ raw melody", k: k, base: &base, metric: bench.ServerCPUPerMsg, op: "≤", limit: 0.5, format: ratio})
	}
	for _, cs := range wsCases {
		k, base := key{scWS, cs, "courier-raw"}, key{scWS, cs, "melody"}
		if res.runs[k] != nil {
			bs = append(bs, bar{issue: "bridge", what: "(courier-raw, for comparison), " + cs, k: k, base: &base, metric: bench.ServerCPUPerMsg, format: ratio})
		}
	}
	if len(wsCases) > 0 {
		cs := wsCases[len(wsCases)-1]
		bs = append(bs,
			bar{issue: "bridge", what: "server RSS per idle connection, " + cs + ", KiB", k: key{scWS, cs, "courier"}, metric: bench.RSSPerConn, scale: 1024, op: "≤", limit: 16, format: fixed(1)},
			bar{issue: "bridge", what: "(raw melody's, for comparison), KiB", k: key{scWS, cs, "melody"}, metric: bench.RSSPerConn, scale: 1024, format: fixed(1)})
	}
	for _, cs := range wsCases {
		k, base := key{scWS, cs, "courier"}, key{scWS, cs, "melody"}
		bs = append(bs, bar{issue: "bridge", what: "broadcast, " + cs + ": p99 time for one broadcast to reach all ÷ raw melody", k: k, base: &base, metric: bench.P99Ms, op: "≤", limit: 1.0, format: ratio})
	}
	for _, cs := range wsCases {
		k, base := key{scWS, cs, "courier-raw"}, key{scWS, cs, "melody"}
		if res.runs[k] != nil {
			bs = append(bs, bar{issue: "bridge", what: "(courier-raw, for comparison), " + cs, k: k, base: &base, metric: bench.P99Ms, format: ratio})
		}
	}
	return bs
}

// barNotes explain how the bars are read.
const barNotes = `A bar is met when the median of its runs meets it; the range shows how sure that is. Ratios are
per round (the implementation's run against the baseline's run just before it). "0 allocations per
delivered message" is read as Go's allocs/op rounds it, with the bus's documented budget: a delivery
allocates nothing, a publish takes one slab allocation per 32 messages (TestPublishAllocations).`

// methodNotes is what every reader of the figures should know.
const methodNotes = `Notes on method:

- Every server listens on 127.0.0.1; every loop is bounded in count and in time; nothing leaves the machine.
- The load generator and the WebSocket server share the machine's cores, so wall-clock figures of the
  WebSocket scenarios include the clients' work: the "courier" clients are full Go clients
  (bridge/client: JSON decoding of every frame, a goroutine per subscription), as the bridge's bars ask;
  the "courier-raw", melody and Centrifuge clients are raw readers that only scan the bytes (they still
  speak each server's protocol to connect and subscribe). Server CPU per delivered message is the
  figure that compares the servers alone.
- Peers take bytes where that is their API (Watermill, NATS, JetStream, Centrifuge, melody): the JSON
  encoding (and, for in-process subscribers, decoding) is inside the measured loop, as it would be in
  their users' code. Courier and EventBus hand over the Go value.
- Figures of different scenarios are not comparable with each other: sizes, time limits and counting
  differ. Ratios within a scenario are.`

// limitsNotes say what limits the bars that are missed, from profiles;
// profileFindings follows it.
const limitsNotes = `## What limits the missed bars

From CPU profiles of the same scenarios (the text is kept in bench/peers/cmd/report/findings.go; a
WebSocket server child writes a CPU profile when COURIER_BENCH_SERVER_CPUPROFILE names a file):

`
