package main

import (
	"image/color"
	"math"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/courierbus/courier/bench/internal/bench"
)

// series is one implementation's bars, one per group.
type series struct {
	name string
	vals []float64
}

var palette = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff},
	color.RGBA{0xff, 0x7f, 0x0e, 0xff},
	color.RGBA{0x2c, 0xa0, 0x2c, 0xff},
	color.RGBA{0xd6, 0x27, 0x28, 0xff},
	color.RGBA{0x94, 0x67, 0xbd, 0xff},
	color.RGBA{0x8c, 0x56, 0x4b, 0xff},
}

// barChart draws grouped bars (one group per name in groups, one bar per
// series) with a dashed line at ref (when > 0), into an SVG file.
func barChart(path, title, ylabel string, groups []string, ss []series, ref float64) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	w := vg.Points(14)
	if len(ss) > 4 {
		w = vg.Points(10)
	}
	top := ref
	for i, s := range ss {
		vals := make(plotter.Values, len(s.vals))
		for j, v := range s.vals {
			if !math.IsNaN(v) {
				vals[j] = v
				top = max(top, v)
			}
		}
		bc, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		bc.Color = palette[i%len(palette)]
		bc.LineStyle.Width = 0
		bc.Offset = vg.Length(float64(i)-float64(len(ss)-1)/2) * w
		p.Add(bc)
		p.Legend.Add(s.name, bc)
	}
	if ref > 0 {
		l := plotter.NewFunction(func(float64) float64 { return ref })
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		l.Color = color.Gray{0x60}
		p.Add(l)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.NominalX(groups...)
	p.Y.Min = 0
	p.Y.Max = top * 1.35 // room for the legend
	p.Add(plotter.NewGrid())
	width := vg.Length(max(len(groups)*len(ss), 8)) * w * 1.6
	return p.Save(max(width, 5*vg.Inch), 3.6*vg.Inch, path)
}

// medianRatio is the median run-by-run ratio of k to its baseline, or NaN.
func (r *results) medianRatio(k key, metric string) float64 {
	base, ok := r.baselineKey(k)
	if !ok {
		return math.NaN()
	}
	vs := r.ratios(k, base, metric)
	if len(vs) == 0 {
		return math.NaN()
	}
	return bench.Summarize(vs).Median
}

func (r *results) median(k key, metric string) float64 {
	vs := r.values(k, metric)
	if len(vs) == 0 {
		return math.NaN()
	}
	return bench.Summarize(vs).Median
}

// implsOf returns the implementations of scenario other than skip, in
// order of first appearance.
func (r *results) implsOf(scenario string, skip ...string) []string {
	var out []string
	for _, k := range r.keysOf(scenario) {
		skipped := false
		for _, s := range skip {
			skipped = skipped || k.impl == s
		}
		if !skipped && k.cas != "" && !contains(out, k.impl) {
			out = append(out, k.impl)
		}
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func writeCharts(dir, format string, res *results) ([]string, error) {
	var files []string
	chart := func(name, title, ylabel string, groups []string, ss []series, ref float64) error {
		if len(groups) == 0 || len(ss) == 0 {
			return nil
		}
		path := filepath.Join(dir, strings.TrimSuffix(name, ".svg")+"."+format)
		files = append(files, path)
		return barChart(path, title, ylabel, groups, ss, ref)
	}
	// In-process and rooms: msgs/s relative to channels.
	var groups []string
	type gk struct{ sc, cas string }
	var gks []gk
	for _, sc := range []string{scInProc, scRooms} {
		for _, cs := range res.cases(sc) {
			groups = append(groups, cs)
			gks = append(gks, gk{sc, cs})
		}
	}
	var ss []series
	for _, impl := range append(res.implsOf(scInProc, "chan"), res.implsOf(scRooms, "chan")...) {
		if containsSeries(ss, impl) {
			continue
		}
		s := series{name: impl}
		for _, g := range gks {
			s.vals = append(s.vals, res.medianRatio(key{g.sc, g.cas, impl}, bench.MsgsPerSec))
		}
		ss = append(ss, s)
	}
	if err := chart("benchmarks-inproc.svg", "In-process delivery", "delivered msgs/s ÷ channels (same run)", groups, ss, 1); err != nil {
		return nil, err
	}
	// Persisted publish: records/s relative to WriteBatch.
	groups, ss = res.cases(scPersist), nil
	for _, impl := range res.implsOf(scPersist) {
		s := series{name: impl}
		for _, cs := range groups {
			s.vals = append(s.vals, res.medianRatio(key{scPersist, cs, impl}, bench.MsgsPerSec))
		}
		ss = append(ss, s)
	}
	if err := chart("benchmarks-persist.svg", "Persisted publish, 64-byte records", "records/s ÷ raw Badger WriteBatch (same run)", groups, ss, 0); err != nil {
		return nil, err
	}
	// WebSocket: delivered msgs/s relative to melody, and p99 in ms.
	groups, ss = res.cases(scWS), nil
	for _, impl := range res.implsOf(scWS, "melody") {
		s := series{name: impl}
		for _, cs := range groups {
			s.vals = append(s.vals, res.medianRatio(key{scWS, cs, impl}, bench.MsgsPerSec))
		}
		ss = append(ss, s)
	}
	if err := chart("benchmarks-ws.svg", "WebSocket broadcast", "delivered msgs/s ÷ raw melody (same run)", groups, ss, 1); err != nil {
		return nil, err
	}
	ss = nil
	for _, impl := range res.implsOf(scWS) {
		s := series{name: impl}
		for _, cs := range groups {
			s.vals = append(s.vals, res.median(key{scWS, cs, impl}, bench.P99Ms))
		}
		ss = append(ss, s)
	}
	if err := chart("benchmarks-ws-p99.svg", "One broadcast to every client, p99", "ms", groups, ss, 0); err != nil {
		return nil, err
	}
	return files, nil
}

func containsSeries(ss []series, name string) bool {
	for _, s := range ss {
		if s.name == name {
			return true
		}
	}
	return false
}
