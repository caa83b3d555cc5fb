package bus_test

import (
	"fmt"
	"testing"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/bus/bustest"
)

// The Broker seam keeps the cross-bus contract with the in-memory hub, the
// reference implementation; package cluster runs the same suite on NATS.
func TestBrokerContract(t *testing.T) {
	bustest.TestBroker(t, bustest.BrokerHarness{
		New: func(t *testing.T, n int, opts ...bus.Option) []*bus.Bus {
			hub := bustest.NewHub()
			buses := make([]*bus.Bus, n)
			nodes := make([]*bustest.HubNode, n)
			for i := range n {
				nodes[i] = hub.Node(fmt.Sprintf("bus%d", i))
				b, err := bus.New(append([]bus.Option{bus.WithBroker(nodes[i])}, opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				buses[i] = b
			}
			t.Cleanup(func() {
				for i, b := range buses {
					b.Close()
					nodes[i].Close()
				}
				hub.Close()
			})
			return buses
		},
	})
}
