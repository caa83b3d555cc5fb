// Command report runs Courier's standard benchmark set against its
// baselines and peers and writes docs/benchmarks.md, with SVG charts and a
// CSV of every run beside it:
//
//	cd bench/peers && go run ./cmd/report
//
// Every figure is measured -runs times (default 3), the runs of all
// implementations interleaved, and reported as the median with min–max;
// every ratio is taken per run against the baseline measured in the same
// round. Progress goes to stderr. -quick shrinks every scenario to a
// smoke-sized run (for tests).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/courierbus/courier/bench/internal/bench"
	"github.com/courierbus/courier/bench/peers"
)

func main() {
	bench.ChildMain(peers.WSServers()...)
	var cfg config
	flag.IntVar(&cfg.runs, "runs", 3, "runs of every figure (at least 3 for the report)")
	flag.BoolVar(&cfg.quick, "quick", false, "tiny runs, to check that everything works")
	flag.StringVar(&cfg.out, "out", "", "directory for benchmarks.md, its charts and CSV (default: the module's docs/)")
	flag.StringVar(&cfg.only, "only", "", "comma-separated scenarios to run (inproc,rooms,persist,replay,restart,cluster,syncost,ws,rt); default all")
	flag.StringVar(&cfg.format, "format", "svg", "chart format: svg or png")
	flag.Parse()
	if cfg.out == "" {
		root, err := repoRoot()
		if err != nil {
			fail(err)
		}
		cfg.out = filepath.Join(root, "docs")
	}
	if err := run(cfg); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "report:", err)
	os.Exit(1)
}

// repoRoot finds the root module's directory above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/courierbus/courier\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no github.com/courierbus/courier go.mod above the working directory; give -out")
		}
		dir = parent
	}
}

type config struct {
	runs   int
	quick  bool
	out    string
	only   string
	format string
}

func (c config) want(scenario string) bool {
	if c.only == "" {
		return true
	}
	for _, s := range strings.Split(c.only, ",") {
		if strings.TrimSpace(s) == scenario {
			return true
		}
	}
	return false
}

func run(cfg config) error {
	if _, err := bench.RaiseFileLimit(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "courier-report-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	r := &runner{cfg: cfg, tmp: tmp, res: newResults(), start: time.Now(), machine: bench.ThisMachine()}
	r.plan()
	fmt.Fprintf(os.Stderr, "report: %d measurements, %d runs each, on %s (%d cores), %s\n",
		r.total/cfg.runs, cfg.runs, r.machine.CPU, r.machine.Cores, r.machine.Go)
	if err := r.execute(); err != nil {
		return err
	}
	r.res.elapsed = time.Since(r.start)
	files, err := write(cfg, r.res, r.machine)
	if err != nil {
		return err
	}
	if s := syncSummary(r.res); s != "" {
		fmt.Fprintf(os.Stderr, "report: %s\n", s)
	}
	fmt.Fprintf(os.Stderr, "report: done in %v; wrote %s\n", r.res.elapsed.Round(time.Second), strings.Join(files, ", "))
	return nil
}
