package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/courierbus/courier/bench/internal/bench"
	"github.com/courierbus/courier/bench/peers"
)

// Scenario names, as in the CSV.
const (
	scInProc  = "inproc"
	scRooms   = "rooms"
	scPersist = "persist"
	scReplay  = "replay"
	scRestart = "restart"
	scWS      = "ws"
	scRT      = "rt"
	scCluster = "cluster"
)

// key names one figure's runs.
type key struct{ scenario, cas, impl string }

// results holds every run's metrics, by round.
type results struct {
	runs     map[key][]bench.Metrics // index: round; nil for a failed run
	errs     map[key][]string
	order    []key
	baseline map[string]string // scenario+"/"+case → baseline impl (case "" for any)
	notes    map[string]string // impl → how it is used
	runsN    int
	elapsed  time.Duration
}

func newResults() *results {
	return &results{runs: map[key][]bench.Metrics{}, errs: map[key][]string{}, baseline: map[string]string{}, notes: map[string]string{}}
}

func (r *results) add(k key, round int, m bench.Metrics, err error) {
	rs, ok := r.runs[k]
	if !ok {
		r.order = append(r.order, k)
	}
	for len(rs) <= round {
		rs = append(rs, nil)
	}
	rs[round] = m
	r.runs[k] = rs
	if err != nil {
		r.errs[k] = append(r.errs[k], fmt.Sprintf("run %d: %v", round+1, err))
	}
}

// baselineKey returns the key of k's baseline, and whether it has one.
func (r *results) baselineKey(k key) (key, bool) {
	if b, ok := r.baseline[k.scenario+"/"+k.cas]; ok {
		return key{k.scenario, k.cas, b}, true
	}
	if b, ok := r.baseline[k.scenario+"/"]; ok {
		return key{k.scenario, "", b}, true
	}
	return key{}, false
}

// values returns metric of k's successful runs.
func (r *results) values(k key, metric string) []float64 {
	var vs []float64
	for _, m := range r.runs[k] {
		if v, ok := m[metric]; ok && m != nil {
			vs = append(vs, v)
		}
	}
	return vs
}

// ratios returns metric of k divided by metric of base, round by round.
func (r *results) ratios(k, base key, metric string) []float64 {
	a, b := r.runs[k], r.runs[base]
	var vs []float64
	for i := range min(len(a), len(b)) {
		x, ok1 := a[i][metric]
		y, ok2 := b[i][metric]
		if ok1 && ok2 && a[i] != nil && b[i] != nil && y != 0 {
			vs = append(vs, x/y)
		}
	}
	return vs
}

// runner plans and runs the measurements.
type runner struct {
	cfg     config
	tmp     string
	res     *results
	machine bench.Machine
	start   time.Time
	steps   []step
	total   int
	done    int
}

type step struct {
	label string
	do    func() error
}

func (r *runner) add(label string, do func() error) { r.steps = append(r.steps, step{label, do}) }

// sizes of one run of each scenario.
type sizes struct {
	inprocN     int // deliveries at most per in-process run
	inprocTime  time.Duration
	writeN      int
	writeTime   time.Duration
	replayN     int
	restartN    int
	wsClients   []int
	ws          bench.WSOptions
	rt          bench.RTOptions
	persistPubs []int
	spread      bench.SpreadOptions
}

func (r *runner) sizes() sizes {
	if r.cfg.quick {
		return sizes{inprocN: 2000, inprocTime: 10 * time.Second, writeN: 100, writeTime: 10 * time.Second,
			replayN: 2000, restartN: 10_000, wsClients: []int{20, 50},
			ws: bench.WSOptions{Batch: 8, Messages: 32, ThroughputTime: 5 * time.Second, LatencySamples: 5, LatencyTime: 5 * time.Second},
			rt: bench.RTOptions{Trips: 100, Time: 5 * time.Second}, persistPubs: []int{1, 4},
			spread: bench.SpreadOptions{Messages: 100, Time: 10 * time.Second, LatencySamples: 5, LatencyTime: 5 * time.Second}}
	}
	return sizes{inprocN: 3_000_000, inprocTime: 300 * time.Millisecond, writeN: 300_000, writeTime: 800 * time.Millisecond,
		replayN: 100_000, restartN: 1_000_000, wsClients: []int{1000, 5000},
		ws: bench.WSOptions{Batch: 32, Messages: 100_000, ThroughputTime: 2 * time.Second, LatencySamples: 50, LatencyTime: 3 * time.Second},
		rt: bench.RTOptions{Trips: 5000, Time: time.Second}, persistPubs: []int{1, 16, 64},
		spread: bench.SpreadOptions{Messages: 300_000, Time: 500 * time.Millisecond, LatencySamples: 200, LatencyTime: time.Second}}
}

// inprocLabel names an in-process implementation in the report.
func inprocLabel(im bench.InProc) string {
	if im.Name == "chan" {
		return "chan"
	}
	return im.Name + " " + im.Mode
}

func (r *runner) plan() {
	sz := r.sizes()
	res := r.res
	res.runsN = r.cfg.runs
	var restartDir string
	replays := map[string]bench.ReplayFlow{}
	if r.cfg.want(scRestart) {
		restartDir = filepath.Join(r.tmp, "restart")
		r.add(fmt.Sprintf("restart: fill %d records (not measured)", sz.restartN), func() error {
			return bench.FillRestart(restartDir, sz.restartN)
		})
	}
	if r.cfg.want(scReplay) {
		for _, rp := range peers.Replayers() {
			res.notes[rp.Name] = rp.Note
			if rp.Baseline {
				res.baseline[scReplay+"/"] = rp.Name
			}
			r.add(fmt.Sprintf("replay: fill %s with %d records (not measured)", rp.Name, sz.replayN), func() error {
				fl, err := rp.Open(filepath.Join(r.tmp, "replay-"+rp.Name), sz.replayN)
				if err != nil {
					return err
				}
				replays[rp.Name] = fl
				return nil
			})
		}
	}
	for round := range r.cfg.runs {
		tag := fmt.Sprintf("(run %d/%d)", round+1, r.cfg.runs)
		if r.cfg.want(scInProc) || r.cfg.want(scRooms) {
			shapes := []bench.Shape{}
			if r.cfg.want(scInProc) {
				shapes = append(shapes, bench.Shapes()...)
			}
			if r.cfg.want(scRooms) {
				shapes = append(shapes, bench.RoomShape())
			}
			for _, sh := range shapes {
				sc := scInProc
				if sh.Rooms > 0 {
					sc = scRooms
				}
				for _, im := range peers.InProc() {
					if sh.Rooms > 0 && im.Mode == bench.AtLeastOnce && im.Name == "courier" {
						continue // rooms are measured volatile, as in bus.BenchmarkRooms
					}
					k := key{sc, sh.Name, inprocLabel(im)}
					res.notes[k.impl] = im.Note
					if im.Name == "chan" {
						res.baseline[sc+"/"+sh.Name] = k.impl
					}
					r.add(fmt.Sprintf("%s %s %s %s", sc, sh.Name, k.impl, tag), func() error {
						m, err := runInProc(im, sh, sz)
						if !errors.Is(err, bench.ErrUnsupported) {
							res.add(k, round, m, err)
						}
						return describe(m, err, bench.MsgsPerSec, "msgs/s")
					})
				}
			}
		}
		if r.cfg.want(scPersist) {
			for _, w := range peers.Writers() {
				res.notes[w.Name] = w.Note
				for _, pubs := range sz.persistPubs {
					if w.Baseline && pubs != sz.persistPubs[0] {
						continue
					}
					k := key{scPersist, fmt.Sprintf("%s, %d publishers", w.Mode, pubs), w.Name}
					if w.Baseline {
						k.cas = ""
						res.baseline[scPersist+"/"] = w.Name
					}
					r.add(fmt.Sprintf("persist %s %s %s", w.Name, k.cas, tag), func() error {
						dir := filepath.Join(r.tmp, fmt.Sprintf("persist-%d", len(r.steps)))
						m, err := runWrite(w, dir, pubs, sz)
						os.RemoveAll(dir)
						res.add(k, round, m, err)
						return describe(m, err, bench.MsgsPerSec, "records/s")
					})
				}
			}
		}
		if r.cfg.want(scReplay) {
			for _, rp := range peers.Replayers() {
				k := key{scReplay, fmt.Sprintf("%d records", sz.replayN), rp.Name}
				if rp.Baseline {
					k.cas = ""
				}
				r.add(fmt.Sprintf("replay %s %s", rp.Name, tag), func() error {
					fl := replays[rp.Name]
					if fl == nil {
						return errors.New("not filled")
					}
					m, err := bench.RunReplay(fl, 30*time.Second)
					res.add(k, round, m, err)
					return describe(m, err, bench.MsgsPerSec, "records/s")
				})
			}
		}
		if r.cfg.want(scRestart) {
			res.baseline[scRestart+"/"] = "badger"
			for _, what := range []string{"none", "badger", "courier"} {
				k := key{scRestart, fmt.Sprintf("%d records", sz.restartN), what}
				if what == "badger" {
					k.cas = ""
				}
				r.add(fmt.Sprintf("restart reopen %s %s", what, tag), func() error {
					m, err := bench.RunReopen(what, restartDir)
					res.add(k, round, m, err)
					return describe(m, err, bench.RSSMiB, "MiB RSS")
				})
			}
		}
		if r.cfg.want(scCluster) {
			r.planCluster(round, tag, sz)
		}
		if r.cfg.want(scSync) {
			r.planSync(round, tag, sz)
		}
		if r.cfg.want(scWS) {
			for _, n := range sz.wsClients {
				for _, im := range peers.WSImpls() {
					k := key{scWS, fmt.Sprintf("%d clients", n), im.Name}
					res.notes["ws "+im.Name] = im.Note
					if im.Name == "melody" {
						res.baseline[scWS+"/"+k.cas] = im.Name
					}
					r.add(fmt.Sprintf("ws broadcast %s %s %s", k.cas, im.Name, tag), func() error {
						opt := sz.ws
						opt.Clients = n
						m, err := bench.RunWS(im, opt)
						res.add(k, round, m, err)
						return describe(m, err, bench.MsgsPerSec, "msgs/s")
					})
				}
			}
		}
		if r.cfg.want(scRT) {
			for _, im := range peers.WSImpls() {
				if im.RoundTripper == nil {
					continue
				}
				k := key{scRT, "1 client", im.Name}
				if im.Name == "melody" {
					res.baseline[scRT+"/"+k.cas] = im.Name
				}
				r.add(fmt.Sprintf("round trips %s %s", im.Name, tag), func() error {
					m, err := bench.RunRT(im, sz.rt)
					res.add(k, round, m, err)
					return describe(m, err, bench.RTPerSec, "round trips/s")
				})
			}
		}
	}
	if r.cfg.want(scReplay) {
		r.add("replay: close stores", func() error {
			var errs []error
			for _, fl := range replays {
				errs = append(errs, fl.Close())
			}
			return errors.Join(errs...)
		})
	}
	r.total = len(r.steps)
}

// planCluster adds one round of the cluster scenario: a cluster started
// for the round, then every case with every implementation, the single
// bus baseline first, then the cluster stopped.
func (r *runner) planCluster(round int, tag string, sz sizes) {
	res := r.res
	var cl *bench.Cluster
	dir := filepath.Join(r.tmp, fmt.Sprintf("cluster-%d", round))
	r.add(fmt.Sprintf("cluster: start %d NATS servers and buses, R%d (not measured) %s", bench.ClusterNodes, bench.ClusterReplicas, tag), func() error {
		var err error
		cl, err = bench.StartCluster(dir)
		return err
	})
	for _, sp := range bench.Spreads() {
		for _, im := range bench.Spreaders() {
			k := key{scCluster, sp.Name, im.Name}
			res.notes[im.Name] = im.Note
			if im.Baseline {
				res.baseline[scCluster+"/"+sp.Name] = im.Name
			}
			r.add(fmt.Sprintf("cluster %s %s %s", sp.Name, im.Name, tag), func() error {
				d := filepath.Join(r.tmp, "spread")
				m, err := runSpread(im, cl, d, sp, sz)
				os.RemoveAll(d)
				res.add(k, round, m, err)
				if err != nil {
					return err
				}
				return described(fmt.Sprintf("%s msgs/s, p50 %.0f µs, p99 %.0f µs", human(m[bench.MsgsPerSec]), m[bench.P50Us], m[bench.P99Us]))
			})
		}
	}
	r.add("cluster: stop "+tag, func() error {
		if cl == nil {
			return nil
		}
		err := cl.Close()
		cl = nil
		return errors.Join(err, os.RemoveAll(dir))
	})
}

func (r *runner) execute() error {
	for i, s := range r.steps {
		t := time.Now()
		fmt.Fprintf(os.Stderr, "[%3d/%d %6s] %s", i+1, len(r.steps), time.Since(r.start).Round(time.Second), s.label)
		err := s.do()
		msg := ""
		var d described
		if errors.As(err, &d) {
			msg, err = string(d), nil
		}
		if err != nil {
			msg = "FAILED: " + err.Error()
		}
		fmt.Fprintf(os.Stderr, ": %s (%.1fs)\n", msg, time.Since(t).Seconds())
	}
	return nil
}

// described is a step's one-line result, passed as an error value.
type described string

func (d described) Error() string { return string(d) }

func describe(m bench.Metrics, err error, metric, unit string) error {
	if err != nil {
		return err
	}
	return described(fmt.Sprintf("%s %s", human(m[metric]), unit))
}

func runInProc(im bench.InProc, sh bench.Shape, sz sizes) (bench.Metrics, error) {
	fl, err := im.Open(sh)
	if err != nil {
		return nil, err
	}
	defer fl.Close()
	if _, err := bench.RunInProc(fl, 2000, 10*time.Second); err != nil { // warm up
		return nil, err
	}
	return bench.RunInProc(fl, max(sz.inprocN/sh.Recipients(), 1), sz.inprocTime)
}

func runWrite(w bench.Writer, dir string, pubs int, sz sizes) (bench.Metrics, error) {
	fl, err := w.Open(dir, pubs)
	if err != nil {
		return nil, err
	}
	if _, err := bench.RunWrite(fl, 50, 10*time.Second); err != nil { // warm up
		fl.Close()
		return nil, err
	}
	m, err := bench.RunWrite(fl, sz.writeN, sz.writeTime)
	return m, errors.Join(err, fl.Close())
}

func runSpread(im bench.Spreader, cl *bench.Cluster, dir string, sp bench.Spread, sz sizes) (bench.Metrics, error) {
	fl, err := im.Open(cl, dir, sp)
	if err != nil {
		return nil, err
	}
	if _, err := bench.RunSpread(fl, bench.SpreadOptions{Messages: 50, Time: 10 * time.Second}); err != nil { // warm up
		fl.Close()
		return nil, err
	}
	m, err := bench.RunSpread(fl, sz.spread)
	return m, errors.Join(err, fl.Close())
}

// human formats a count: 1234567 → "1.23M".
func human(v float64) string {
	switch {
	case v >= 10e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 10e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 10:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2g", v)
	}
}
