// Package peers runs the bench scenarios with the libraries a Go
// developer would use instead of Courier: github.com/asaskevich/EventBus,
// Watermill's gochannel, NATS (core, and JetStream with file storage)
// embedded with an in-process connection, and Centrifuge embedded. It is
// a module of its own (with a replace of the root module), so that the
// root module does not depend on any of them.
//
// Each peer is used in its natural form: a Go value where it takes one,
// bytes where it needs them, encoded with encoding/json inside the
// measured loop.
//
// The report command regenerates docs/benchmarks.md, its charts and CSV:
//
//	cd bench/peers && go run ./cmd/report
package peers
