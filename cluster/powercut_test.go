package cluster_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/cluster"
	"github.com/courierbus/courier/internal/lazyfs"
	"github.com/courierbus/courier/internal/natsproc"
)

// powerRig is three nats-server processes, each with its JetStream store
// on a file system of its own that keeps only what was fsync'd when the
// power is cut (internal/lazyfs), and a bus on each server, joined through
// a cluster.Node. Publishers run on the buses and record what was
// acknowledged; a subscriber on each bus records what it was given.
type powerRig struct {
	t      *testing.T
	fs     []*lazyfs.FS
	nats   *natsproc.Cluster
	mon    *nats.Conn // watches the stream, through any server
	cfg    cluster.Config
	topics []string

	mu    sync.Mutex   // guards nodes and subs
	nodes []*testNode  // nil while node i restarts
	subs  []*dedupeSub // node i's subscriber

	seen seenLog

	stop  chan struct{}
	wg    sync.WaitGroup
	pubs  []*powerPublisher
	acked []atomic.Int64 // acknowledged publishes, by node
	cycle atomic.Int32   // power cuts so far

	restarted time.Time // when the last cut's file systems and servers began to come back

	topMu sync.Mutex
	top   map[string]uint64 // the highest acknowledged seq of each topic
}

// newPowerRig mounts the file systems, starts the servers with opts and a
// bus on each, whose stream keeps replicas copies.
func newPowerRig(t *testing.T, rule lazyfs.Rule, replicas int, opts ...natsproc.Option) *powerRig {
	r := &powerRig{
		t:      t,
		cfg:    cluster.Config{Replicas: replicas, Timeout: 2 * time.Second},
		topics: []string{"power.a", "power.b", "power.c"},
		nodes:  make([]*testNode, 3),
		subs:   make([]*dedupeSub, 3),
		acked:  make([]atomic.Int64, 3),
		stop:   make(chan struct{}),
		seen:   seenLog{at: map[posKey]string{}},
		top:    map[string]uint64{},
	}
	stores := make([]string, 3)
	for i := range 3 {
		f := lazyfs.Mount(t, "", rule) // unmounted after the cleanups below
		r.fs = append(r.fs, f)
		stores[i] = f.Dir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	if r.nats, err = natsproc.Start(ctx, t.TempDir(), stores, opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.halt()
		for i := range r.nodes {
			r.stopNode(i)
		}
		if r.mon != nil {
			r.mon.Close()
		}
		r.nats.Close()
		if t.Failed() {
			r.logTails()
		}
	})
	if r.mon, err = nats.Connect(r.nats.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r.startNode(i)
	}
	return r
}

// logTails logs the end of every server's log.
func (r *powerRig) logTails() {
	for i := range r.nats.Len() {
		b, _ := os.ReadFile(r.nats.Log(i))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		r.t.Logf("%s, the end of its log:\n%s", r.nats.Name(i), strings.Join(lines[max(0, len(lines)-60):], "\n"))
	}
}

// startNode starts bus i on server i (its connection knows the others, to
// fail over to) with a subscriber to every topic.
func (r *powerRig) startNode(i int) {
	r.t.Helper()
	urls := []string{r.nats.URL(i)}
	for j := range r.nats.Len() {
		if j != i {
			urls = append(urls, r.nats.URL(j))
		}
	}
	conn, err := nats.Connect(strings.Join(urls, ","), nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		r.t.Fatal(err)
	}
	cfg := r.cfg
	cfg.Name = "node" + string(rune('A'+i))
	// New waits for the stream to be placed, but a JetStream request that
	// reaches a stream with no leader yet (after a cut) can go unanswered
	// until New's context ends: try again with a fresh one.
	var node *cluster.Node
	deadline := time.Now().Add(90 * time.Second)
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		node, err = cluster.New(ctx, conn, cfg)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			conn.Close()
			r.t.Fatalf("node %d, %d tries: %v", i, try, err)
		}
		r.t.Logf("node %d, try %d: %v", i, try, err)
	}
	b, err := bus.New(bus.WithBroker(node))
	if err != nil {
		node.Close()
		conn.Close()
		r.t.Fatal(err)
	}
	d := r.seen.subscriber()
	if _, err := b.Subscribe("power.>", d.handle); err != nil {
		b.Close()
		node.Close()
		conn.Close()
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.nodes[i] = &testNode{nc: conn, node: node, bus: b}
	r.subs[i] = d
	r.mu.Unlock()
}

// stopNode closes bus i, its node and its connection, in that order.
func (r *powerRig) stopNode(i int) { r.dropNode(i, false) }

// dropNode stops bus i; lost says it lost its power with the servers: its
// connection goes first, as a dead process's does, so that nothing waits
// for servers that are not there (a node's Close does, several seconds).
func (r *powerRig) dropNode(i int, lost bool) {
	r.mu.Lock()
	tn := r.nodes[i]
	r.nodes[i] = nil
	r.mu.Unlock()
	if tn == nil {
		return
	}
	if lost {
		tn.nc.Close()
	}
	tn.bus.Close()
	tn.node.Close()
	tn.nc.Close()
}

func (r *powerRig) bus(i int) *bus.Bus {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.nodes[i] == nil {
		return nil
	}
	return r.nodes[i].bus
}

// ack is a publish that returned a sequence number.
type ack struct {
	topic   string
	seq     uint64
	payload string
	cycle   int32 // the power cuts before it
}

type powerPublisher struct {
	id, node int
	acked    []ack
	failed   int
}

// publish starts n publishers, spread over the buses, each publishing
// unique payloads to random topics until halt; a failed publish is not
// tried again.
func (r *powerRig) publish(n int) {
	for p := range n {
		pp := &powerPublisher{id: p, node: p % 3}
		r.pubs = append(r.pubs, pp)
		r.wg.Go(func() { r.runPublisher(pp) })
	}
}

func (r *powerRig) runPublisher(pp *powerPublisher) {
	rnd := rand.New(rand.NewPCG(uint64(pp.id), 13))
	pause := func() bool {
		select {
		case <-r.stop:
			return false
		case <-time.After(20 * time.Millisecond):
			return true
		}
	}
	for k := 0; ; k++ {
		select {
		case <-r.stop:
			return
		default:
		}
		b := r.bus(pp.node)
		if b == nil {
			if !pause() {
				return
			}
			continue
		}
		topic := r.topics[rnd.IntN(len(r.topics))]
		payload := fmt.Sprintf("%q", fmt.Sprintf("p%d-%d", pp.id, k))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		seq, err := b.PublishRaw(ctx, topic, []byte(payload))
		cancel()
		if err != nil {
			pp.failed++
			if !pause() {
				return
			}
			continue
		}
		pp.acked = append(pp.acked, ack{topic, seq, payload, r.cycle.Load()})
		r.topMu.Lock()
		r.top[topic] = max(r.top[topic], seq)
		r.topMu.Unlock()
		r.acked[pp.node].Add(1)
	}
}

// halt stops the publishers and waits for them.
func (r *powerRig) halt() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.wg.Wait()
}

// posKey is a message's place: its topic and position.
type posKey struct {
	topic      string
	epoch, seq uint64
}

// seenLog is what every subscriber was given, by position: a subscriber
// that drops what it already had by (epoch, seq) would miss a message
// given a position another message had.
type seenLog struct {
	mu        sync.Mutex
	at        map[posKey]string
	conflicts []string // positions given to two payloads
	dups      int      // payloads given to one subscriber at two positions
	delivered int
}

// subscriber returns a subscriber that de-duplicates by (epoch, seq).
func (l *seenLog) subscriber() *dedupeSub {
	return &dedupeSub{log: l, had: map[posKey]bool{}, payloads: map[string]bool{}}
}

type dedupeSub struct {
	log      *seenLog
	mu       sync.Mutex
	had      map[posKey]bool
	payloads map[string]bool
}

// has reports whether the subscriber was given payload.
func (d *dedupeSub) has(payload string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.payloads[payload]
}

func (d *dedupeSub) handle(_ context.Context, m bus.Message[any]) error {
	data, err := m.Data()
	if err != nil {
		return err
	}
	k := posKey{m.Topic(), m.Position().Epoch, m.Seq()}
	p := string(data)
	d.mu.Lock()
	if d.had[k] {
		d.mu.Unlock()
		return nil // a redelivery: dropped
	}
	d.had[k] = true
	dup := d.payloads[p]
	d.payloads[p] = true
	d.mu.Unlock()
	l := d.log
	l.mu.Lock()
	defer l.mu.Unlock()
	l.delivered++
	if dup {
		l.dups++
	}
	if q, ok := l.at[k]; ok && q != p {
		l.conflicts = append(l.conflicts, fmt.Sprintf("%s (%d, %d): %s and %s", k.topic, k.epoch, k.seq, q, p))
	} else {
		l.at[k] = p
	}
	return nil
}

// cutOne cuts the power of server i: its file system keeps only what was
// fsync'd, and the process is killed (SIGKILL). Then both come back.
func (r *powerRig) cutOne(ctx context.Context, i int) error {
	r.fs[i].Cut()
	r.nats.Kill(i)
	if err := r.fs[i].Restart(); err != nil {
		return err
	}
	r.restarted = time.Now()
	return r.nats.StartServer(ctx, i)
}

// cutAll cuts the power of every server at once, and of the buses: the
// file systems freeze, the servers are killed and the nodes dropped; then
// the servers start again (the buses with startNodes).
func (r *powerRig) cutAll(ctx context.Context) error {
	for _, f := range r.fs {
		f.Cut()
	}
	for i := range r.nats.Len() {
		r.nats.Kill(i)
	}
	for i := range r.nodes {
		r.dropNode(i, true)
	}
	r.restarted = time.Now()
	for i, f := range r.fs {
		if err := f.Restart(); err != nil {
			return err
		}
		if err := r.nats.StartServer(ctx, i); err != nil {
			return err
		}
	}
	return r.nats.WaitReady(ctx)
}

// cleanRestart stops the buses, then the servers cleanly (SIGTERM, as an
// operator would), and starts everything again.
func (r *powerRig) cleanRestart(ctx context.Context) error {
	for i := range r.nodes {
		r.stopNode(i)
	}
	for i := range r.nats.Len() {
		r.nats.Stop(ctx, i)
	}
	for i := range r.nats.Len() {
		if err := r.nats.StartServer(ctx, i); err != nil {
			return err
		}
	}
	if err := r.nats.WaitReady(ctx); err != nil {
		return err
	}
	if err := r.streamLeader(ctx); err != nil {
		return err
	}
	r.startNodes()
	return nil
}

// startNodes starts the buses that are down.
func (r *powerRig) startNodes() {
	for i := range r.nodes {
		if r.bus(i) == nil {
			r.startNode(i)
		}
	}
}
