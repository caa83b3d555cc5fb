// Package bustest holds the conformance suites for bus.Store and
// bus.Broker implementations, and Hub, a broker in memory that is the
// reference for the Broker contract. The in-memory store in package bus
// and the Badger store in package persist run the Store suite; the Hub and
// the NATS node of package cluster run the Broker suite, so they keep the
// same contracts.
package bustest
