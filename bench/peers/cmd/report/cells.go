package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/courierbus/courier/bench/internal/bench"
)

func errors2(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// stat formats the median and range of vs with f.
func stat(vs []float64, f func(float64) string) string {
	if len(vs) == 0 {
		return "—"
	}
	s := bench.Summarize(vs)
	if s.N == 1 || f(s.Min) == f(s.Max) {
		return f(s.Median)
	}
	return fmt.Sprintf("%s [%s–%s]", f(s.Median), f(s.Min), f(s.Max))
}

func ratio(v float64) string { return fmt.Sprintf("%.2f×", v) }

// farRatio formats a ratio that may be far from 1: "1/480" below 0.1
// (the denominator to two significant digits), "120×" from 10.
func farRatio(v float64) string {
	switch {
	case v <= 0:
		return ratio(v)
	case v < 0.1:
		n := 1 / v
		unit := math.Pow(10, math.Floor(math.Log10(n))-1)
		return fmt.Sprintf("1/%.0f", math.Round(n/unit)*unit)
	case v >= 10:
		return fmt.Sprintf("%.0f×", v)
	}
	return ratio(v)
}
func fixed(d int) func(float64) string {
	return func(v float64) string { return strconv.FormatFloat(v, 'f', d, 64) }
}
func scaled(div float64, d int) func(float64) string {
	return func(v float64) string { return strconv.FormatFloat(v/div, 'f', d, 64) }
}

// keysOf returns the keys of scenario in order, optionally of one case.
func (r *results) keysOf(scenario string) []key {
	var ks []key
	for _, k := range r.order {
		if k.scenario == scenario {
			ks = append(ks, k)
		}
	}
	return ks
}

func (r *results) cases(scenario string) []string {
	var cs []string
	for _, k := range r.keysOf(scenario) {
		if k.cas != "" && !slices.Contains(cs, k.cas) {
			cs = append(cs, k.cas)
		}
	}
	return cs
}

// cell is a figure of k: its metric's median and range, and the ratio to
// its baseline when it has one.
func (r *results) cell(k key, metric string, f func(float64) string) string {
	return stat(r.values(k, metric), f)
}

func (r *results) ratioCell(k key, metric string) string { return r.ratioCellF(k, metric, ratio) }

// ratioCellF is ratioCell with the ratios formatted by f.
func (r *results) ratioCellF(k key, metric string, f func(float64) string) string {
	base, ok := r.baselineKey(k)
	if !ok {
		return ""
	}
	if base == k {
		return "1 (baseline)"
	}
	return stat(r.ratios(k, base, metric), f)
}

func (r *results) failures(k key) string {
	if len(r.errs[k]) == 0 {
		return ""
	}
	return " (failed " + strings.Join(r.errs[k], "; ") + ")"
}

type table struct {
	b *strings.Builder
}

func (t table) row(cells ...string) {
	t.b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

func (t table) head(cells ...string) {
	t.row(cells...)
	seps := make([]string, len(cells))
	for i := range seps {
		seps[i] = "---"
	}
	t.row(seps...)
}
