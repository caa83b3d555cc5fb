package observe_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// gatedStore's Stats blocks, once armed, on its first call until the gate
// opens, as a store reading a slow disk would.
type gatedStore struct {
	armed   atomic.Bool   // cleared by the call that blocks
	entered chan struct{} // closed when the blocked call began
	gate    chan struct{} // closed to let it return
}

func (s *gatedStore) Stats() bus.StoreStats {
	if s.armed.CompareAndSwap(true, false) {
		close(s.entered)
		<-s.gate
	}
	return bus.StoreStats{Batches: 1}
}

// A store that is slow to report its counters holds up the snapshot that
// asked, not every other one: the admin reads it outside its lock.
func TestAdminSlowStore(t *testing.T) {
	s := newStack(t, stackConfig{})
	st := &gatedStore{entered: make(chan struct{}), gate: make(chan struct{})}
	t.Cleanup(func() { close(st.gate) }) // before the stack closes
	withAdmin(t, s, observe.BasicAuth(adminUser, adminPass), observe.WithStore(st), observe.Interval(50*time.Millisecond))
	openAdminPage(t, s)
	st.armed.Store(true)
	select {
	case <-st.entered: // the first page's next snapshot is stuck in Stats
	case <-time.After(10 * time.Second):
		t.Fatal("no snapshot called Stats")
	}
	// A second page's watch answers with a snapshot of its own, taken while
	// the other is stuck (before the fix it waited for the lock, and
	// the request timed out).
	openAdminPage(t, s)
}
