package peers_test

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/courierbus/courier/bench/internal/bench"
	"github.com/courierbus/courier/bench/peers"
)

// TestMain lets the test binary serve as the child processes of the
// WebSocket and restart scenarios.
func TestMain(m *testing.M) {
	bench.ChildMain(peers.WSServers()...)
	os.Exit(m.Run())
}

// TestInProcSmoke runs every in-process implementation on every shape,
// rooms included, with a few thousand messages, and checks that each one
// delivered everything.
func TestInProcSmoke(t *testing.T) {
	for _, sh := range append(bench.Shapes(), bench.RoomShape()) {
		for _, im := range peers.InProc() {
			t.Run(sh.Name+"/"+im.Name+"-"+im.Mode, func(t *testing.T) {
				fl, err := im.Open(sh)
				if errors.Is(err, bench.ErrUnsupported) {
					t.Skip(err)
				}
				if err != nil {
					t.Fatal(err)
				}
				defer fl.Close()
				m, err := bench.RunInProc(fl, 2000, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := m[bench.Delivered], float64(2000*sh.Recipients()); got != want {
					t.Errorf("delivered %v, want %v", got, want)
				}
			})
		}
	}
}

// TestPersistSmoke writes a little from 1 and 4 publishers with every
// persisted implementation and replays a small topic with each replayer.
func TestPersistSmoke(t *testing.T) {
	for _, w := range peers.Writers() {
		for _, pubs := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s-%s/publishers=%d", w.Name, w.Mode, pubs), func(t *testing.T) {
				fl, err := w.Open(t.TempDir(), pubs)
				if err != nil {
					t.Fatal(err)
				}
				m, err := bench.RunWrite(fl, 100, 10*time.Second)
				if cerr := fl.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					t.Fatal(err)
				}
				if m[bench.Delivered] != 100 {
					t.Errorf("wrote %v records, want 100", m[bench.Delivered])
				}
			})
		}
	}
	for _, r := range peers.Replayers() {
		t.Run("replay/"+r.Name, func(t *testing.T) {
			fl, err := r.Open(t.TempDir(), 2000)
			if err != nil {
				t.Fatal(err)
			}
			defer fl.Close()
			m, err := bench.RunReplay(fl, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if m[bench.Delivered] != 2000 {
				t.Errorf("read %v records, want 2000", m[bench.Delivered])
			}
		})
	}
}

// TestRestartSmoke fills a small store and reopens it in child processes.
func TestRestartSmoke(t *testing.T) {
	dir := t.TempDir()
	if err := bench.FillRestart(dir, 10_000); err != nil {
		t.Fatal(err)
	}
	for _, what := range []string{"none", "badger", "courier"} {
		m, err := bench.RunReopen(what, dir)
		if err != nil {
			t.Fatal(err)
		}
		if what == "courier" && m[bench.Records] != 10_000 {
			t.Errorf("reopened store holds %v records, want 10000", m[bench.Records])
		}
	}
}

// TestWSSmoke broadcasts to a few clients and times a few round trips
// with every WebSocket implementation, each server in a child process.
func TestWSSmoke(t *testing.T) {
	for _, im := range peers.WSImpls() {
		t.Run(im.Name, func(t *testing.T) {
			m, err := bench.RunWS(im, bench.WSOptions{Clients: 50, Batch: 8, Messages: 64,
				ThroughputTime: 5 * time.Second, LatencySamples: 5, LatencyTime: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := m[bench.Delivered], float64(50*64); got != want {
				t.Errorf("delivered %v, want %v", got, want)
			}
			if _, err := bench.RunRT(im, bench.RTOptions{Trips: 200, Time: 5 * time.Second}); err != nil && !errors.Is(err, bench.ErrUnsupported) {
				t.Fatalf("round trips: %v", err)
			}
		})
	}
}
