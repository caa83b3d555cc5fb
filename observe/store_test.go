package observe_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/observe"
	"github.com/courierbus/courier/persist"
)

// fixedStore is a store of someone else's: observe reads any Store.
type fixedStore bus.StoreStats

func (s fixedStore) Stats() bus.StoreStats { return bus.StoreStats(s) }

// gather registers a collector of a memory bus with opts and returns the
// value of every courier_persist_ series, by name and label values.
func gather(t *testing.T, opts ...observe.CollectorOption) map[string]float64 {
	t.Helper()
	b, err := bus.New()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	col, err := observe.NewCollector(b, opts...)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "courier_persist_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return got
}

func TestWithStoreReadsAnyStore(t *testing.T) {
	got := gather(t, observe.WithStore(fixedStore{Batches: 3, Ops: 7, LSMBytes: 100, LogBytes: 200, Failed: true, Dropped: 2}))
	for name, want := range map[string]float64{
		"courier_persist_commits_total":           3,
		"courier_persist_committed_ops_total":     7,
		"courier_persist_disk_bytes,lsm":          100,
		"courier_persist_disk_bytes,vlog":         200,
		"courier_persist_write_failed":            1,
		"courier_persist_dropped_at_open_records": 2,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
}

func TestWithNilStore(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   observe.Store
	}{
		{"nil", nil},
		{"nil *persist.Store", (*persist.Store)(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := gather(t, observe.WithStore(tc.st)); len(got) != 0 {
				t.Errorf("got %v, want no courier_persist_ series", got)
			}
		})
	}
}
