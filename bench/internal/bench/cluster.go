package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/cluster"
	"github.com/courierbus/courier/internal/natscluster"
	"github.com/courierbus/courier/internal/natsproc"
	"github.com/courierbus/courier/persist"
)

// Metrics of the cluster scenario, besides MsgsPerSec, CPUPerMsg and
// AllocsPerMsg of the throughput run and P50Us and P99Us, the
// publish→handler time of messages published one at a time.
const (
	LoadP50Us = "load-p50-us" // median publish→handler time during the throughput run
	LoadP99Us = "load-p99-us" // 99th percentile of the same
)

// ClusterNodes is how many NATS servers, and buses, the cluster scenario
// runs; ClusterReplicas how many copies JetStream keeps of every message.
const (
	ClusterNodes    = 3
	ClusterReplicas = 3
)

// Stamped is the value the cluster scenario sends: bench.Event's fields
// and the time it was published, for publish→handler latency. It goes
// through JSON on every implementation (a bus with a store or a broker
// encodes what it publishes).
type Stamped struct {
	ID   int
	Kind int
	Sent int64 // when published: ns since the flow was opened, monotonic
}

// Spread is a case of the cluster scenario: Pubs publishers on node C,
// one subscriber on each node in Subs (0 is A, 1 B, 2 C), every
// subscriber getting every message. On a single bus every publisher and
// subscriber is on the one bus.
type Spread struct {
	Name string
	Pubs int
	Subs []int
}

// Spreads returns the cluster scenario's cases: C → A and C → A, B, C,
// each from 1 and from 8 publishers.
func Spreads() []Spread {
	return []Spread{
		{"C → A, 1 publisher", 1, []int{0}},
		{"C → A, 8 publishers", 8, []int{0}},
		{"C → A+B+C, 1 publisher", 1, []int{0, 1, 2}},
		{"C → A+B+C, 8 publishers", 8, []int{0, 1, 2}},
	}
}

// Slug names sp in a Go benchmark: "subs=A/publishers=1".
func (sp Spread) Slug() string {
	var b strings.Builder
	for _, n := range sp.Subs {
		b.WriteByte(byte('A' + n))
	}
	return fmt.Sprintf("subs=%s/publishers=%d", b.String(), sp.Pubs)
}

// Spreader is one implementation of the cluster scenario.
type Spreader struct {
	Name     string // "bus", "bus+persist buffered", "cluster R3", ...
	Note     string
	Baseline bool
	// Open sets sp up, its subscriptions ready: the cluster
	// implementation on cl's buses, the others on a bus of their own
	// (with files in dir, an empty directory, for persist).
	Open func(cl *Cluster, dir string, sp Spread) (SpreadFlow, error)
}

// SpreadFlow is a Spreader set up for one case.
type SpreadFlow interface {
	// Run publishes up to n messages in all (split among the
	// publishers), fewer if ctx ends first, and returns once every
	// subscriber has handled what was published, with the number of
	// deliveries.
	Run(ctx context.Context, n int) (delivered int64, err error)
	// Latency publishes up to n messages one at a time, each once every
	// subscriber has handled the one before, until ctx ends, and returns
	// every delivery's publish→handler time.
	Latency(ctx context.Context, n int) ([]time.Duration, error)
	// Loaded returns the publish→handler times of the last Run's
	// deliveries (the latest 65536 per subscriber).
	Loaded() []time.Duration
	Close() error
}

// SpreadOptions size one run of the cluster scenario.
type SpreadOptions struct {
	Messages       int           // at most this many publishes in the throughput run
	Time           time.Duration // and for at most this long
	LatencySamples int           // then this many publishes one at a time
	LatencyTime    time.Duration // for at most this long
}

// RunSpread measures one run of fl: the throughput run, stopped at
// opt.Time, with CPU and allocations per delivery and the latency of its
// deliveries; then, when opt.LatencySamples > 0, the latency of messages
// published one at a time (see [SpreadLatency]).
func RunSpread(fl SpreadFlow, opt SpreadOptions) (Metrics, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opt.Time)
	m, err := Measure(func() (int64, error) { return fl.Run(ctx, opt.Messages) })
	cancel()
	if err != nil {
		return nil, err
	}
	loaded := micros(fl.Loaded())
	m[LoadP50Us], m[LoadP99Us] = Percentile(loaded, 50), Percentile(loaded, 99)
	if opt.LatencySamples > 0 {
		err = SpreadLatency(fl, m, opt.LatencySamples, opt.LatencyTime)
	}
	return m, err
}

// SpreadLatency publishes up to n messages on fl one at a time, for at
// most d, and adds P50Us and P99Us of their deliveries to m.
func SpreadLatency(fl SpreadFlow, m Metrics, n int, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	lat, err := fl.Latency(ctx, n)
	if err != nil {
		return err
	}
	us := micros(lat)
	m[P50Us], m[P99Us] = Percentile(us, 50), Percentile(us, 99)
	return nil
}

func micros(ds []time.Duration) []float64 {
	vs := make([]float64, len(ds))
	for i, d := range ds {
		vs[i] = float64(d) / 1e3
	}
	return vs
}

// Spreaders returns the implementations of the cluster scenario, baseline
// first: one bus, one bus on persist (buffered, then synced), and the
// cluster.
func Spreaders() []Spreader {
	return []Spreader{SingleBus(), SingleBusPersist(Buffered), SingleBusPersist(Synced), ClusterR3()}
}

// SingleBus is the cluster scenario's baseline: one bus, no store, every
// publisher and subscriber on it, default (at-least-once) subscriptions.
func SingleBus() Spreader {
	return Spreader{
		Name: "bus", Baseline: true,
		Note: "one bus, no store: every publisher and subscriber on it, default subscriptions",
		Open: func(_ *Cluster, _ string, sp Spread) (SpreadFlow, error) {
			b, err := bus.New()
			if err != nil {
				return nil, err
			}
			return newSpreadFlow(sp, []*bus.Bus{b, b, b}, "bench.cluster", b.Close)
		},
	}
}

// SingleBusPersist is one bus on persist (Badger), synced or Buffered:
// each publish returns once its message is committed, as a cluster
// publish returns once JetStream has it on a majority of servers.
func SingleBusPersist(mode string) Spreader {
	return Spreader{
		Name: "bus+persist " + mode,
		Note: "one bus with bus.WithStore(persist), " + mode + "; every publisher and subscriber on it",
		Open: func(_ *Cluster, dir string, sp Spread) (SpreadFlow, error) {
			st, err := persist.Open(dir, storeOpts(mode)...)
			if err != nil {
				return nil, err
			}
			b, err := bus.New(bus.WithStore(st))
			if err != nil {
				st.Close()
				return nil, err
			}
			return newSpreadFlow(sp, []*bus.Bus{b, b, b}, "bench.cluster",
				func() error { return errors.Join(b.Close(), st.Close()) })
		},
	}
}

// ClusterR3 is the cluster: publishers on node C's bus, subscribers on
// the buses of their nodes, a fresh topic per Open.
func ClusterR3() Spreader {
	return Spreader{
		Name: fmt.Sprintf("cluster R%d", ClusterReplicas),
		Note: fmt.Sprintf("%d buses, each a cluster.Node on its own server of an in-process %d-server NATS cluster "+
			"(JetStream file storage, %d replicas); publishers on node C, subscribers on their nodes",
			ClusterNodes, ClusterNodes, ClusterReplicas),
		Open: func(cl *Cluster, _ string, sp Spread) (SpreadFlow, error) {
			if cl == nil {
				return nil, errors.New("bench: the cluster implementation needs a running cluster")
			}
			topic := fmt.Sprintf("bench.cluster.t%d", cl.topics.Add(1))
			return newSpreadFlow(sp, cl.buses, topic, func() error { return nil })
		},
	}
}

// latRing is the size of each subscriber's ring of latencies.
const latRing = 1 << 16

type stampSink struct {
	slot atomic.Int64 // next ring slot
	n    atomic.Int64 // deliveries recorded
	lat  []time.Duration
	_    [40]byte
}

type spreadFlow struct {
	sp    Spread
	base  time.Time
	pub   *bus.Topic[Stamped]
	subs  []*bus.Subscription
	sinks []stampSink
	close func() error
}

// newSpreadFlow subscribes on buses[i] for each i in sp.Subs and publishes
// on buses[2] (node C).
func newSpreadFlow(sp Spread, buses []*bus.Bus, topic string, close func() error) (*spreadFlow, error) {
	f := &spreadFlow{sp: sp, base: time.Now(), sinks: make([]stampSink, len(sp.Subs)), close: close}
	fail := func(err error) (*spreadFlow, error) {
		return nil, errors.Join(err, f.Close())
	}
	for i, node := range sp.Subs {
		s := &f.sinks[i]
		s.lat = make([]time.Duration, latRing)
		tp, err := bus.NewTopic[Stamped](buses[node], topic)
		if err != nil {
			return fail(err)
		}
		sub, err := tp.Subscribe(func(_ context.Context, m bus.Message[Stamped]) error {
			d := time.Since(f.base) - time.Duration(m.Value.Sent)
			s.lat[(s.slot.Add(1)-1)%latRing] = d
			s.n.Add(1)
			return nil
		})
		if err != nil {
			return fail(err)
		}
		f.subs = append(f.subs, sub)
	}
	var err error
	if f.pub, err = bus.NewTopic[Stamped](buses[2], topic); err != nil {
		return fail(err)
	}
	return f, nil
}

func (f *spreadFlow) reset() {
	for i := range f.sinks {
		f.sinks[i].slot.Store(0)
		f.sinks[i].n.Store(0)
	}
}

func (f *spreadFlow) total() int64 {
	var t int64
	for i := range f.sinks {
		t += f.sinks[i].n.Load()
	}
	return t
}

// wait waits until the subscribers have handled want in all, or timeout,
// polling every 50µs; it returns the total.
func (f *spreadFlow) wait(want int64, timeout time.Duration) int64 {
	deadline := time.Now().Add(timeout)
	for {
		t := f.total()
		if t >= want || time.Now().After(deadline) {
			return t
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func (f *spreadFlow) send(p, i int) error {
	_, err := f.pub.Publish(context.Background(), Stamped{ID: i, Kind: p, Sent: int64(time.Since(f.base))})
	return err
}

func (f *spreadFlow) Run(ctx context.Context, n int) (int64, error) {
	f.reset()
	var sent atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, f.sp.Pubs)
	for p := range f.sp.Pubs {
		share := n / f.sp.Pubs
		if p < n%f.sp.Pubs {
			share++
		}
		wg.Go(func() {
			i := 0
			defer func() { sent.Add(int64(i)) }()
			// A cluster publish takes a millisecond or so: look at ctx
			// often enough to stop near the time limit.
			for ; i < share; i++ {
				if i&15 == 15 && ctx.Err() != nil {
					return
				}
				if err := f.send(p, i); err != nil {
					errs[p] = err
					return
				}
			}
		})
	}
	wg.Wait()
	want := sent.Load() * int64(len(f.sinks))
	got := f.wait(want, DrainTimeout)
	err := errors.Join(errs...)
	if err == nil && got < want {
		err = fmt.Errorf("bench: %d of %d deliveries within %v", got, want, DrainTimeout)
	}
	return got, err
}

func (f *spreadFlow) Latency(ctx context.Context, n int) ([]time.Duration, error) {
	f.reset()
	n = min(n, latRing)
	subs := int64(len(f.sinks))
	k := 0
	for ; k < n; k++ {
		if k > 0 && ctx.Err() != nil {
			break
		}
		if err := f.send(0, k); err != nil {
			return nil, err
		}
		want := int64(k+1) * subs
		if got := f.wait(want, DrainTimeout); got < want {
			return nil, fmt.Errorf("bench: message %d not handled by every subscriber within %v", k, DrainTimeout)
		}
	}
	var lat []time.Duration
	for i := range f.sinks {
		lat = append(lat, f.sinks[i].lat[:k]...)
	}
	return lat, nil
}

func (f *spreadFlow) Loaded() []time.Duration {
	var lat []time.Duration
	for i := range f.sinks {
		s := &f.sinks[i]
		lat = append(lat, s.lat[:min(s.n.Load(), latRing)]...)
	}
	return lat
}

func (f *spreadFlow) Close() error {
	var errs []error
	for _, s := range f.subs {
		errs = append(errs, s.Unsubscribe())
	}
	return errors.Join(append(errs, f.close())...)
}

// Cluster is the cluster scenario's cluster: ClusterNodes NATS servers
// with JetStream on 127.0.0.1 (in this process, or as nats-server
// processes), and a bus on each, joined through a cluster.Node with
// ClusterReplicas replicas. Flows of the cluster implementation share it,
// each on a topic of its own.
type Cluster struct {
	stop   func() // stops the servers
	conns  []*nats.Conn
	nodes  []*cluster.Node
	buses  []*bus.Bus
	topics atomic.Int64
}

// StartCluster starts the cluster in this process with its files under
// dir and waits until every bus has joined.
func StartCluster(dir string) (*Cluster, error) {
	nc, err := natscluster.Start(ClusterNodes, dir)
	if err != nil {
		return nil, err
	}
	urls := make([]string, ClusterNodes)
	for i := range urls {
		urls[i] = nc.URL(i)
	}
	return join(urls, nc.Shutdown)
}

// StartClusterProcs starts the cluster as ClusterNodes nats-server
// processes (the go.mod's version, built once and cached; see
// internal/natsproc) with their files under dir, each fsyncing every
// write when syncAlways and otherwise at NATS's default interval (two
// minutes), and waits until every bus has joined. It must run inside a
// module that requires nats-server.
func StartClusterProcs(dir string, syncAlways bool) (*Cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stores := make([]string, ClusterNodes)
	for i := range stores {
		stores[i] = filepath.Join(dir, fmt.Sprintf("store-%d", i))
	}
	var opts []natsproc.Option
	if syncAlways {
		opts = append(opts, natsproc.SyncAlways())
	}
	pc, err := natsproc.Start(ctx, dir, stores, opts...)
	if err != nil {
		return nil, err
	}
	urls := make([]string, ClusterNodes)
	for i := range urls {
		urls[i] = pc.URL(i)
	}
	return join(urls, pc.Close)
}

// join starts a bus on each server and waits until all have joined.
func join(urls []string, stop func()) (*Cluster, error) {
	cl := &Cluster{stop: stop}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, url := range urls {
		conn, err := nats.Connect(url)
		if err != nil {
			return nil, errors.Join(err, cl.Close())
		}
		cl.conns = append(cl.conns, conn)
		node, err := cluster.New(ctx, conn, cluster.Config{Name: "node" + string(rune('A'+i)), Replicas: ClusterReplicas})
		if err != nil {
			return nil, errors.Join(err, cl.Close())
		}
		cl.nodes = append(cl.nodes, node)
		b, err := bus.New(bus.WithBroker(node))
		if err != nil {
			return nil, errors.Join(err, cl.Close())
		}
		cl.buses = append(cl.buses, b)
	}
	return cl, nil
}

// Close closes the buses, the nodes, their connections, then the
// servers.
func (cl *Cluster) Close() error {
	var errs []error
	for _, b := range cl.buses {
		errs = append(errs, b.Close())
	}
	for _, n := range cl.nodes {
		errs = append(errs, n.Close())
	}
	for _, c := range cl.conns {
		c.Close()
	}
	cl.stop()
	return errors.Join(errs...)
}
