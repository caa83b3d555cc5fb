package observe_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/internal/tcpproxy"
	"github.com/courierbus/courier/observe"
)

// scrape gets url and returns its samples by series ("name{labels}" as the
// text format writes it, labels sorted by name).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/plain") // the text format, not protobuf
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func dump(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s %v\n", k, m[k])
	}
	return b.String()
}

type order struct {
	ID int `json:"id"`
}

// TestMetricsAfterWorkload runs a known workload through a bus on Badger
// and a bridge, scrapes /metrics, and checks every counter's value.
func TestMetricsAfterWorkload(t *testing.T) {
	s := newStack(t, stackConfig{persist: true, bridgeOpts: []bridge.Option{bridge.ExposeRooms("*", bridge.Join)}})
	ctx := ctxT(t)

	col, err := observe.NewCollector(s.bus, observe.WithBridge(s.br), observe.WithStore(s.store), observe.WithCommits(s.commits))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	s.mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))

	// orders: 10 messages, all acknowledged at the first attempt.
	orders, err := bus.NewTopic[order](s.bus, "orders")
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int64
	if _, err := orders.Subscribe(func(context.Context, bus.Message[order]) error { handled.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := orders.Publish(ctx, order{ID: i}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "10 orders handled", func() bool { return handled.Load() == 10 })

	// jobs: 2 messages, each failing 3 attempts: 2 deliveries, 4
	// redeliveries, 2 dead letters on "$dead.jobs".
	jobs, err := bus.NewTopic[order](s.bus, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Subscribe(func(context.Context, bus.Message[order]) error { return errors.New("boom") },
		bus.MaxDeliver(3), bus.Backoff(func(int) time.Duration { return time.Millisecond })); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := jobs.Publish(ctx, order{ID: i}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "2 dead letters", func() bool { return topicStats(s.bus, "$dead.jobs").Published == 2 })

	// ticks: 5 volatile messages to a subscription with room for one while
	// its handler is busy with the first: 1 queued, 3 dropped.
	ticks, err := bus.NewTopic[int](s.bus, "ticks")
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}, 5), make(chan struct{})
	var ticked atomic.Int64
	if _, err := ticks.Subscribe(func(context.Context, bus.Message[int]) error {
		entered <- struct{}{}
		<-release
		ticked.Add(1)
		return nil
	}, bus.Volatile(), bus.QueueSize(1), bus.OnFull(bus.DropNewest)); err != nil {
		t.Fatal(err)
	}
	if _, err := ticks.Publish(ctx, 0, bus.Volatile()); err != nil {
		t.Fatal(err)
	}
	<-entered
	for i := 1; i < 5; i++ {
		if _, err := ticks.Publish(ctx, i, bus.Volatile()); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	eventually(t, "2 ticks handled", func() bool { return ticked.Load() == 2 })

	// The bridge: one request that is not a WebSocket upgrade (refused),
	// one client that joins a room, loses its connection and resumes.
	resp, err := http.Get(s.srv.URL + "/bus/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	p := tcpproxy.New(t, strings.TrimPrefix(s.srv.URL, "http://"))
	resumed := make(chan bool, 4)
	c, err := client.Dial(ctx, p.URL(s.wsURL()), client.ReconnectBackoff(5*time.Millisecond, 20*time.Millisecond),
		client.OnEvent(func(ev client.Event) {
			if ev.Type == client.Connected {
				resumed <- ev.Resumed
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-resumed
	if err := c.Join(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	// One error frame: publishing to a topic that is not exposed.
	if _, err := c.Publish(ctx, "secret", 1, client.Ack()); err == nil {
		t.Fatal("publishing to a topic that is not exposed worked")
	}
	if p.Cut() != 1 {
		t.Fatal("no connection to cut")
	}
	select {
	case r := <-resumed:
		if !r {
			t.Fatal("the client got a new session, not its old one")
		}
	case <-ctx.Done():
		t.Fatal("the client did not reconnect")
	}
	eventually(t, "one connection", func() bool { return s.br.Stats().Connections == 1 })

	got := scrape(t, s.srv.URL+"/metrics")
	want := map[string]float64{
		`courier_bus_published_total{topic="orders"}`:              10,
		`courier_bus_delivered_total{topic="orders"}`:              10,
		`courier_bus_redelivered_total{topic="orders"}`:            0,
		`courier_bus_dead_lettered_total{topic="orders"}`:          0,
		`courier_bus_published_total{topic="jobs"}`:                2,
		`courier_bus_delivered_total{topic="jobs"}`:                2,
		`courier_bus_redelivered_total{topic="jobs"}`:              4,
		`courier_bus_dead_lettered_total{topic="jobs"}`:            2,
		`courier_bus_published_total{topic="$dead"}`:               2,
		`courier_bus_delivered_total{topic="$dead"}`:               0,
		`courier_bus_published_total{topic="ticks"}`:               5,
		`courier_bus_delivered_total{topic="ticks"}`:               2,
		`courier_bus_published_total{topic="$rooms"}`:              1, // the join
		`courier_bus_dropped_total{topic="ticks"}`:                 3,
		`courier_bus_dropped_total{topic="orders"}`:                0,
		`courier_bus_subscription_dropped_total{pattern="ticks"}`:  3,
		`courier_bus_subscription_dropped_total{pattern="orders"}`: 0,
		`courier_bus_queued_messages{pattern="ticks"}`:             0,
		`courier_bus_unacked_messages{pattern="orders"}`:           0,
		`courier_bus_subscriptions{pattern="jobs"}`:                1,
		`courier_bus_topics`:                                       5, // orders, jobs, $dead.jobs, ticks, $rooms.lobby
		`courier_bus_rooms`:                                        1,
		`courier_bus_members`:                                      1,

		`courier_bridge_connections`:                 1,
		`courier_bridge_sessions`:                    1,
		`courier_bridge_connections_accepted_total`:  2,
		`courier_bridge_connections_refused_total`:   1,
		`courier_bridge_resumes_total`:               1,
		`courier_bridge_slow_disconnects_total`:      0,
		`courier_bridge_bad_frame_disconnects_total`: 0,
		`courier_bridge_sessions_ended_total`:        0,
		`courier_bridge_routes`:                      0,

		`courier_bridge_error_frames_total{code="forbidden"}`: 1,
		`courier_bridge_error_frames_total{code="bad_json"}`:  0,
		`courier_bridge_resumes_unrecovered_total`:            0,
		`courier_bridge_resumes_failed_total`:                 0,
	}
	// Persist: 4 topics created in the store (orders, jobs, $dead.jobs,
	// ticks; $rooms.* topics stay in memory) and 14 records appended
	// (volatile publishes are not kept), one batch each here since every
	// publish waited for the one before.
	st := s.store.Stats()
	if st.Ops != 18 {
		t.Errorf("store committed %d changes, want 18: 4 topics and 14 records", st.Ops)
	}
	want[`courier_persist_committed_ops_total`] = 18
	want[`courier_persist_commits_total`] = float64(st.Batches)
	want[`courier_persist_commit_batch_ops_count`] = float64(st.Batches)
	want[`courier_persist_commit_batch_ops_sum`] = 18
	want[`courier_persist_commit_duration_seconds_count`] = float64(st.Batches)
	want[`courier_persist_write_failed`] = 0
	want[`courier_persist_dropped_at_open_records`] = 0
	want[`courier_persist_commit_batch_ops_bucket{le="+Inf"}`] = float64(st.Batches)
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s missing", k)
		} else if g != v {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
	for _, k := range []string{`courier_bridge_frames_received_total`, `courier_bridge_frames_sent_total`} {
		if g := got[k]; g < 3 {
			t.Errorf("%s = %v, want at least 3 (hello, join, publish; welcome, ok, error)", k, g)
		}
	}
	for _, k := range []string{`courier_persist_disk_bytes{part="vlog"}`, `courier_persist_committed_bytes_total`} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s missing", k)
		}
	}
	if g := got[`courier_persist_disk_bytes{part="lsm"}`]; g <= 0 {
		t.Errorf(`courier_persist_disk_bytes{part="lsm"} = %v after 14 records, want more than 0`, g)
	}
	if got[`courier_persist_commit_duration_seconds_sum`] <= 0 {
		t.Errorf("commit durations sum to %v", got[`courier_persist_commit_duration_seconds_sum`])
	}
	if t.Failed() {
		t.Logf("scraped:\n%s", dump(got))
	}
}

// TestLint checks the metric names and help against Prometheus's
// conventions.
func TestLint(t *testing.T) {
	s := newStack(t, stackConfig{persist: true})
	col, err := observe.NewCollector(s.bus, observe.WithBridge(s.br), observe.WithStore(s.store), observe.WithCommits(s.commits))
	if err != nil {
		t.Fatal(err)
	}
	tp, _ := bus.NewTopic[int](s.bus, "a")
	tp.Subscribe(func(context.Context, bus.Message[int]) error { return nil })
	tp.Publish(ctxT(t), 1)
	problems, err := testutil.CollectAndLint(col)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	if err := testutil.CollectAndCompare(col, strings.NewReader(""), "courier_bus_topics"); err == nil {
		t.Error("CollectAndCompare against nothing passed: the collector exported nothing?")
	}
}

// TestLabelsBounded checks that label values stop growing at MaxLabels and
// that the bus's own topics fold.
func TestLabelsBounded(t *testing.T) {
	s := newStack(t, stackConfig{})
	col, err := observe.NewCollector(s.bus, observe.MaxLabels(3),
		observe.TopicLabel(func(name string) string { return strings.SplitN(name, ".", 2)[0] }))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	for _, name := range []string{"a.1", "a.2", "b.1", "c.1", "d.1", "d.2"} {
		if _, err := s.bus.PublishRaw(ctx, name, []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	m, _ := s.bus.Member("m1")
	m.Join(ctx, "r1", "r2")

	want := `
# HELP courier_bus_published_total Messages published, volatile ones included.
# TYPE courier_bus_published_total counter
courier_bus_published_total{topic="$other"} 3
courier_bus_published_total{topic="$rooms"} 2
courier_bus_published_total{topic="a"} 2
courier_bus_published_total{topic="b"} 1
`
	// "$rooms" came first (Stats sorts by name, '$' first), then a and b;
	// c and d share "$other".
	if err := testutil.CollectAndCompare(col, strings.NewReader(want), "courier_bus_published_total"); err != nil {
		t.Error(err)
	}
	// Later scrapes keep the same values even when the topics change.
	s.bus.PublishRaw(ctx, "0.first", []byte(`1`))
	want = strings.Replace(want, `{topic="$other"} 3`, `{topic="$other"} 4`, 1)
	if err := testutil.CollectAndCompare(col, strings.NewReader(want), "courier_bus_published_total"); err != nil {
		t.Error(err)
	}
	if _, err := observe.NewCollector(s.bus, observe.MaxLabels(0)); !errors.Is(err, observe.ErrInvalidOption) {
		t.Errorf("MaxLabels(0): got %v, want ErrInvalidOption", err)
	}
	if _, err := observe.NewCollector(nil); !errors.Is(err, observe.ErrInvalidOption) {
		t.Errorf("nil bus: got %v, want ErrInvalidOption", err)
	}
}

// TestSubscriptionDroppedNeverDecreases checks that the drop count of a
// pattern keeps what a subscription that ended had dropped.
func TestSubscriptionDroppedNeverDecreases(t *testing.T) {
	s := newStack(t, stackConfig{})
	col, err := observe.NewCollector(s.bus)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	sub, err := s.bus.Subscribe("v", func(context.Context, bus.Message[any]) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		return nil
	}, bus.Volatile(), bus.QueueSize(1))
	if err != nil {
		t.Fatal(err)
	}
	s.bus.PublishRaw(ctx, "v", []byte(`0`), bus.Volatile())
	<-entered
	for range 4 {
		s.bus.PublishRaw(ctx, "v", []byte(`1`), bus.Volatile())
	}
	check := func(want string) {
		t.Helper()
		exp := "# HELP courier_bus_subscription_dropped_total Messages dropped by the full queues of subscriptions with this pattern. Subscriptions that end take their count with them; the series never decreases but may then miss drops.\n" +
			"# TYPE courier_bus_subscription_dropped_total counter\n" + want
		if err := testutil.CollectAndCompare(col, strings.NewReader(exp), "courier_bus_subscription_dropped_total"); err != nil {
			t.Error(err)
		}
	}
	check("courier_bus_subscription_dropped_total{pattern=\"v\"} 3\n")
	close(release)
	sub.Unsubscribe()
	<-sub.Done()
	check("courier_bus_subscription_dropped_total{pattern=\"v\"} 3\n")
}
