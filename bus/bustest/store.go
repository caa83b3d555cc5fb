package bustest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/courierbus/courier/bus"
)

// StoreHarness tells the suite how to make stores.
type StoreHarness struct {
	// New returns an empty store. The suite closes it with Close.
	New func(t *testing.T) bus.Store
	// Close releases a store made by New or Reopen.
	Close func(t *testing.T, s bus.Store)
	// Reopen, if set, closes s and opens the same data again, as a process
	// restart would. Stores that keep nothing past Close leave it nil.
	Reopen func(t *testing.T, s bus.Store) bus.Store
	// NewRetaining, if set, returns an empty store that keeps at most n
	// records per topic.
	NewRetaining func(t *testing.T, n int) bus.Store
}

// TestStore runs every conformance test against the harness.
func TestStore(t *testing.T, h StoreHarness) {
	t.Run("EpochStable", func(t *testing.T) { testEpoch(t, h) })
	t.Run("AppendSequence", func(t *testing.T) { testAppend(t, h) })
	t.Run("ConcurrentAppend", func(t *testing.T) { testConcurrentAppend(t, h) })
	t.Run("ReadRanges", func(t *testing.T) { testRead(t, h) })
	t.Run("RecordFields", func(t *testing.T) { testFields(t, h) })
	t.Run("SeqAt", func(t *testing.T) { testSeqAt(t, h) })
	t.Run("Consumers", func(t *testing.T) { testConsumers(t, h) })
	t.Run("CancelledContext", func(t *testing.T) { testCancelled(t, h) })
	t.Run("TopicsIndependent", func(t *testing.T) { testIndependent(t, h) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, h) })
	if h.Reopen != nil {
		t.Run("Reopen", func(t *testing.T) { testReopen(t, h) })
	}
	if h.NewRetaining != nil {
		t.Run("Retention", func(t *testing.T) { testRetention(t, h) })
	}
}

func open(t *testing.T, h StoreHarness) bus.Store {
	t.Helper()
	s := h.New(t)
	t.Cleanup(func() { h.Close(t, s) })
	return s
}

func appendN(t *testing.T, s bus.Store, topic string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		if _, err := s.Append(ctx, topic, bus.Record{Time: time.Now(), Data: fmt.Appendf(nil, "m%d", i+1)}); err != nil {
			t.Fatalf("Append %d: %v", i+1, err)
		}
	}
}

func testEpoch(t *testing.T, h StoreHarness) {
	s := open(t, h)
	ctx := context.Background()
	a, err := s.Topic(ctx, "a.b")
	if err != nil {
		t.Fatal(err)
	}
	if a.Epoch == 0 {
		t.Fatal("epoch is 0, want non-zero")
	}
	if a.First != 0 || a.Last != 0 {
		t.Fatalf("empty topic state = %+v, want First=0 Last=0", a)
	}
	again, _ := s.Topic(ctx, "a.b")
	if again.Epoch != a.Epoch {
		t.Fatalf("epoch changed: got %d, want %d", again.Epoch, a.Epoch)
	}
}

func testAppend(t *testing.T, h StoreHarness) {
	s := open(t, h)
	ctx := context.Background()
	for want := uint64(1); want <= 5; want++ {
		seq, err := s.Append(ctx, "t", bus.Record{Seq: 99, Time: time.Now(), Data: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		if seq != want {
			t.Fatalf("Append seq = %d, want %d", seq, want)
		}
	}
	st, _ := s.Topic(ctx, "t")
	if st.First != 1 || st.Last != 5 {
		t.Fatalf("state = %+v, want First=1 Last=5", st)
	}
}

func testConcurrentAppend(t *testing.T, h StoreHarness) {
	s := open(t, h)
	ctx := context.Background()
	const workers, each = 8, 50
	var mu sync.Mutex
	seen := map[uint64]string{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				data := fmt.Sprintf("w%d-%d", w, i)
				seq, err := s.Append(ctx, "c", bus.Record{Time: time.Now(), Data: []byte(data)})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := seen[seq]; dup {
					t.Errorf("seq %d given twice (%s, %s)", seq, prev, data)
				}
				seen[seq] = data
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	recs, err := s.Read(ctx, "c", 1, workers*each+10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != workers*each {
		t.Fatalf("read %d records, want %d", len(recs), workers*each)
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d, want %d (gap or disorder)", i, r.Seq, i+1)
		}
		if string(r.Data) != seen[r.Seq] {
			t.Fatalf("seq %d data %q, want %q", r.Seq, r.Data, seen[r.Seq])
		}
	}
}

func testRead(t *testing.T, h StoreHarness) {
	s := open(t, h)
	ctx := context.Background()
	appendN(t, s, "r", 10)
	for _, tc := range []struct {
		name        string
		from        uint64
		limit       int
		first, last uint64 // 0,0 = none
	}{
		{"all", 1, 100, 1, 10},
		{"from zero", 0, 100, 1, 10},
		{"middle", 4, 3, 4, 6},
		{"tail", 10, 5, 10, 10},
		{"past end", 11, 5, 0, 0},
		{"far past end", 1000, 5, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []bus.Record{{Seq: 777}}
			got, err := s.Read(ctx, "r", tc.from, tc.limit, prefix)
			if err != nil {
				t.Fatal(err)
			}
			if got[0].Seq != 777 {
				t.Fatal("Read overwrote buf instead of appending")
			}
			got = got[1:]
			if tc.first == 0 {
				if len(got) != 0 {
					t.Fatalf("got %d records, want none", len(got))
				}
				return
			}
			if n := int(tc.last - tc.first + 1); len(got) != n {
				t.Fatalf("got %d records, want %d", len(got), n)
			}
			for i, r := range got {
				want := tc.first + uint64(i)
				if r.Seq != want || string(r.Data) != fmt.Sprintf("m%d", want) {
					t.Fatalf("record %d = (%d, %q), want (%d, m%d)", i, r.Seq, r.Data, want, want)
				}
			}
		})
	}
	got, err := s.Read(ctx, "never.written", 1, 10, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("read of unknown topic = %d records, %v; want none, nil", len(got), err)
	}
}

func testFields(t *testing.T, h StoreHarness) {
	s := open(t, h)
	ctx := context.Background()
	at := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)
	in := bus.Record{
		Time:         at,
		PublisherID:  "pub-1",
		Headers:      map[string]string{"k": "v", "trace": "abc"},
		To:           []string{"r1", "r2"},
		Except:       []string{"r3"},
		ExceptMember: "alice",
		Data:         []byte(`{"text":"hi"}`),
	}
	if _, err := s.Append(ctx, "f", in); err != nil {
		t.Fatal(err)
	}
	in.Data[0] = 'X' // the store must have kept its own copy
	recs, err := s.Read(ctx, "f", 1, 1, nil)
	if err != nil || len(recs) != 1 {
		t.Fatalf("Read = %d, %v", len(recs), err)
	}
	r := recs[0]
	if r.Seq != 1 || !r.Time.Equal(at) || r.PublisherID != "pub-1" || r.ExceptMember != "alice" ||
		string(r.Data) != `{"text":"hi"}` || !slices.Equal(r.To, []string{"r1", "r2"}) ||
		!slices.Equal(r.Except, []string{"r3"}) || len(r.Headers) != 2 || r.Headers["trace"] != "abc" {
		t.Fatalf("record round trip: got %+v", r)
	}
}

func testSeqAt(t *testing.T, h StoreHarness) {
	s := open(t, h)
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		if _, err := s.Append(ctx, "s", bus.Record{Time: base.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		at   time.Time
		want uint64
	}{
		{base.Add(-time.Hour), 1},
		{base, 1},
		{base.Add(90 * time.Second), 3},
		{base.Add(4 * time.Minute), 5},
		{base.Add(time.Hour), 6},
	} {
		got, err := s.SeqAt(ctx, "s", tc.at)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("SeqAt(%v) = %d, want %d", tc.at.Sub(base), got, tc.want)
		}
	}
}

func testConsumers(t *testing.T, h StoreHarness) {
	s := open(t, h)
	ctx := context.Background()
	if _, ok, err := s.Consumer(ctx, "t", "d"); err != nil || ok {
		t.Fatalf("unknown consumer: ok=%v err=%v, want false, nil", ok, err)
	}
	acked := []uint64{7, 9}
	want := bus.ConsumerState{AckFloor: 5, Delivered: 10, Acked: acked}
	if err := s.SaveConsumer(ctx, "t", "d", want); err != nil {
		t.Fatal(err)
	}
	acked[0] = 100 // the store must have kept its own copy
	got, ok, err := s.Consumer(ctx, "t", "d")
	if err != nil || !ok {
		t.Fatalf("Consumer: ok=%v err=%v", ok, err)
	}
	if got.AckFloor != 5 || got.Delivered != 10 || !slices.Equal(got.Acked, []uint64{7, 9}) {
		t.Fatalf("consumer state = %+v, want floor 5, delivered 10, acked [7 9]", got)
	}
	if _, ok, _ := s.Consumer(ctx, "t", "other"); ok {
		t.Fatal("another name sees the saved state")
	}
	if _, ok, _ := s.Consumer(ctx, "u", "d"); ok {
		t.Fatal("another topic sees the saved state")
	}
	if err := s.DeleteConsumer(ctx, "t", "d"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Consumer(ctx, "t", "d"); ok {
		t.Fatal("consumer still there after DeleteConsumer")
	}
	if err := s.DeleteConsumer(ctx, "t", "d"); err != nil {
		t.Fatalf("second DeleteConsumer: %v, want nil", err)
	}
}

func testCancelled(t *testing.T, h StoreHarness) {
	s := open(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(ctx, "x", bus.Record{Time: time.Now()}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with cancelled ctx: %v, want context.Canceled", err)
	}
	st, err := s.Topic(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if st.Last != 0 {
		t.Fatalf("cancelled Append left a record: Last = %d", st.Last)
	}
}

func testIndependent(t *testing.T, h StoreHarness) {
	s := open(t, h)
	ctx := context.Background()
	appendN(t, s, "a", 3)
	appendN(t, s, "a.b", 2)
	appendN(t, s, "ab", 1)
	for topic, want := range map[string]uint64{"a": 3, "a.b": 2, "ab": 1} {
		st, err := s.Topic(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if st.Last != want {
			t.Errorf("topic %q Last = %d, want %d", topic, st.Last, want)
		}
		recs, _ := s.Read(ctx, topic, 1, 10, nil)
		if uint64(len(recs)) != want {
			t.Errorf("topic %q read %d records, want %d", topic, len(recs), want)
		}
	}
}

func testReopen(t *testing.T, h StoreHarness) {
	s := h.New(t)
	ctx := context.Background()
	appendN(t, s, "p", 7)
	st1, _ := s.Topic(ctx, "p")
	if err := s.SaveConsumer(ctx, "p", "d", bus.ConsumerState{AckFloor: 3, Delivered: 6, Acked: []uint64{5}}); err != nil {
		t.Fatal(err)
	}
	s = h.Reopen(t, s)
	defer h.Close(t, s)
	st2, err := s.Topic(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if st2 != st1 {
		t.Fatalf("state after reopen = %+v, want %+v", st2, st1)
	}
	seq, err := s.Append(ctx, "p", bus.Record{Time: time.Now()})
	if err != nil || seq != 8 {
		t.Fatalf("Append after reopen = %d, %v; want 8, nil", seq, err)
	}
	c, ok, err := s.Consumer(ctx, "p", "d")
	if err != nil || !ok || c.AckFloor != 3 || c.Delivered != 6 || !slices.Equal(c.Acked, []uint64{5}) {
		t.Fatalf("consumer after reopen = %+v ok=%v err=%v", c, ok, err)
	}
	recs, err := s.Read(ctx, "p", 1, 100, nil)
	if err != nil || len(recs) != 8 {
		t.Fatalf("read after reopen = %d, %v; want 8", len(recs), err)
	}
}

func testRetention(t *testing.T, h StoreHarness) {
	s := h.NewRetaining(t, 5)
	defer h.Close(t, s)
	ctx := context.Background()
	appendN(t, s, "k", 12)
	st, err := s.Topic(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if st.Last != 12 || st.First < 2 || st.First > 8 {
		t.Fatalf("state = %+v, want Last 12 and First trimmed to about 8", st)
	}
	if _, err := s.Read(ctx, "k", 1, 10, nil); !errors.Is(err, bus.ErrNotCovered) {
		t.Fatalf("Read from trimmed seq: %v, want ErrNotCovered", err)
	}
	recs, err := s.Read(ctx, "k", st.First, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || recs[len(recs)-1].Seq != 12 || recs[0].Seq != st.First {
		t.Fatalf("read from First got %d records", len(recs))
	}
}

// testClosed: after Close every method returns an error wrapping
// bus.ErrClosed.
func testClosed(t *testing.T, h StoreHarness) {
	s := h.New(t)
	ctx := context.Background()
	appendN(t, s, "x", 2)
	h.Close(t, s)
	checks := map[string]error{}
	_, checks["Topic"] = s.Topic(ctx, "x")
	_, checks["Append"] = s.Append(ctx, "x", bus.Record{Time: time.Now()})
	_, checks["Read"] = s.Read(ctx, "x", 1, 10, nil)
	_, checks["SeqAt"] = s.SeqAt(ctx, "x", time.Now())
	_, _, checks["Consumer"] = s.Consumer(ctx, "x", "d")
	checks["SaveConsumer"] = s.SaveConsumer(ctx, "x", "d", bus.ConsumerState{AckFloor: 1})
	checks["DeleteConsumer"] = s.DeleteConsumer(ctx, "x", "d")
	for name, err := range checks {
		if !errors.Is(err, bus.ErrClosed) {
			t.Errorf("%s after Close: %v, want an error wrapping bus.ErrClosed", name, err)
		}
	}
}
