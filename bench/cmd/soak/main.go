// Command soak holds thousands of bridge connections open under a steady
// publish load and checks that the server's memory and goroutines stay
// flat: a bridge over a bus runs in a child process (this binary
// re-executed), the clients in this one.
//
//	go run ./bench/cmd/soak -conns 5000 -duration 10m
//
// Every -report-every it prints the elapsed time, the server's resident
// set (VmRSS of the child) and goroutines, the messages delivered to the
// clients per second and their delivery latency (p50, p99). Then every
// client leaves and it prints the server's resident set and goroutines
// again, and a verdict: the resident set stays within ±10% of its value at
// -warmup until the end, and the goroutines come back to their count
// before the first connection. It exits with status 1 when the verdict
// fails.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/courierbus/courier/bench/internal/bench"
)

func main() {
	if bench.ChildMain() {
		return
	}
	var cfg bench.SoakConfig
	d := bench.DefaultSoakConfig()
	flag.IntVar(&cfg.Conns, "conns", d.Conns, "connections")
	flag.DurationVar(&cfg.Duration, "duration", d.Duration, "how long to publish")
	flag.IntVar(&cfg.Rate, "rate", d.Rate, "messages published per second over all topics")
	flag.IntVar(&cfg.Topics, "topics", d.Topics, "topics the connections spread over, one each")
	flag.DurationVar(&cfg.ReportEvery, "report-every", d.ReportEvery, "interval between reports")
	flag.DurationVar(&cfg.Warmup, "warmup", d.Warmup, "when the resident set is taken as the reference")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := bench.Soak(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if !res.OK() {
		os.Exit(1)
	}
}
