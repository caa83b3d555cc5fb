package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/courierbus/courier/bench/internal/bench"
	"github.com/courierbus/courier/bench/peers"
)

func TestMain(m *testing.M) {
	bench.ChildMain(peers.WSServers()...)
	os.Exit(m.Run())
}

// TestQuickReport makes a whole report with tiny runs and checks that the
// page, its charts and the CSV are there.
func TestQuickReport(t *testing.T) {
	out := t.TempDir()
	if err := run(config{runs: 1, quick: true, out: out, format: "svg"}); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(out, "benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Bars", "## In-process delivery", "## Rooms", "## Persisted publish", "## Replay",
		"## Restart", "## Cluster", "## The cost of sync always", "## WebSocket broadcast", "## Acknowledged round trip"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("benchmarks.md has no %q", want)
		}
	}
	if strings.Contains(string(md), "failed run") {
		t.Errorf("a run failed:\n%s", md)
	}
	for _, f := range []string{"benchmarks.csv", "benchmarks-inproc.svg", "benchmarks-persist.svg", "benchmarks-ws.svg", "benchmarks-ws-p99.svg"} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}
