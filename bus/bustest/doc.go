// Package bustest holds the conformance suites for [bus.Store] and
// [bus.Broker] implementations, so that a store or a broker of one's own
// can prove it keeps the contract the bus relies on. Package bus runs them
// on its memory store and on [Hub], package persist on Badger and package
// cluster on NATS. It imports only the standard library and bus.
//
// # Stores
//
// [TestStore] runs every case of the Store contract (a stable epoch,
// sequences without gaps, concurrent appends, ranges, consumer positions,
// cancelled contexts, what a closed store returns) against the stores a
// [StoreHarness] makes; Reopen and NewRetaining add the cases of a store
// that outlives Close and of one that retains a bounded number of records. In a _test.go file of one's own:
//
//	func TestMyStore(t *testing.T) {
//		bustest.TestStore(t, bustest.StoreHarness{
//			New:   func(t *testing.T) bus.Store { return mystore.Open(t.TempDir()) },
//			Close: func(t *testing.T, s bus.Store) { s.(*mystore.Store).Close() },
//		})
//	}
//
// # Brokers
//
// [TestBroker] runs what buses sharing a broker promise each other
// (docs/cluster.md) on the buses a [BrokerHarness] makes: publishes reach
// every bus once, rooms, queue groups, requests, durable consumers,
// de-duplication, volatile publishes and history. The rooms, queue group,
// request and volatile cases need what [bus.PresenceBroker],
// [bus.GroupBroker], [bus.RequestBroker] and [bus.VolatileBroker] add: a
// broker that leaves one out fails that case (skip it with go test -skip).
//
//	func TestMyBroker(t *testing.T) {
//		bustest.TestBroker(t, bustest.BrokerHarness{
//			New: func(t *testing.T, n int, opts ...bus.Option) []*bus.Bus {
//				buses := make([]*bus.Bus, n)
//				for i := range buses {
//					b, err := bus.New(append([]bus.Option{bus.WithBroker(mybroker.Node(t, i))}, opts...)...)
//					if err != nil {
//						t.Fatal(err)
//					}
//					t.Cleanup(func() { b.Close() })
//					buses[i] = b
//				}
//				return buses
//			},
//		})
//	}
//
// [Hub] is a broker in memory, the reference implementation of the Broker
// contract: buses in one process share their topics through it as the
// nodes of a cluster would, which also suits tests of code that runs on
// several buses.
package bustest
