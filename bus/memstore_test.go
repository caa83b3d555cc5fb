package bus_test

import (
	"testing"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/bus/bustest"
)

var _ bus.Store = (*bus.MemoryStore)(nil)

func TestMemoryStoreConformance(t *testing.T) {
	bustest.TestStore(t, bustest.StoreHarness{
		New:   func(*testing.T) bus.Store { return bus.NewMemoryStore() },
		Close: func(_ *testing.T, s bus.Store) { s.(*bus.MemoryStore).Close() },
		NewRetaining: func(_ *testing.T, n int) bus.Store {
			return bus.NewMemoryStore(bus.MemoryRetention(n, 0))
		},
	})
}
