// Package bench holds Courier's cross-package benchmark scenarios and their
// baselines: in-process delivery (buffered Go channels), rooms, persisted
// publish and replay (raw Badger), restart, WebSocket broadcast and
// round trips (raw melody), and a cluster of three buses on a 3-server
// NATS JetStream cluster, R3 (one bus, with and without persist). Each
// scenario is an implementation-neutral harness with a Courier
// implementation and a baseline; the nested module bench/peers adds the
// other libraries (EventBus, Watermill, NATS, JetStream, Centrifuge) and
// the report command that writes docs/benchmarks.md:
//
//	cd bench/peers && go run ./cmd/report
//
// The package is internal to bench/: its users are the Go benchmarks and
// TestSoak in bench/ (package bench_test), bench/cmd/soak and bench/peers,
// whose import path is under bench/ although it is a module of its own.
// Nothing outside this repository can import it.
//
// # Measuring
//
// Every run is bounded in count and in time. In-process runs report
// delivered messages per second (wall time), process CPU time and heap
// allocations per delivered message. WebSocket servers run in a child
// process (the benchmark binary re-executed, see [ChildMain]), so that
// the server's CPU time and resident set are read from /proc apart from
// the load generator's; every server listens on 127.0.0.1.
//
// Figures are meant to be read as ratios to the baseline measured in the
// same run: the machines these run on are shared and noisy.
//
// # Soak
//
// [Soak] holds thousands of bridge connections under a steady publish
// load, with the server in a child process, and checks that the server's
// resident set stays flat and its goroutines come back once every client
// has left; bench/cmd/soak runs it (10 minutes, 5000 connections by
// default) and TestSoak runs it for 30 seconds with 600 connections.
//
// # Go benchmarks
//
// The same scenarios run as Go benchmarks, with sub-benchmark names that
// carry impl=..., for benchstat -col /impl:
//
//	go test -run '^$' -bench . ./bench
package bench
