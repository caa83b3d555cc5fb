package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config configures a [Node]. The zero value works: every node of a
// cluster must use the same Stream and Prefix.
type Config struct {
	// Name names this node in the cluster; it must be unique among the
	// nodes running at once. Default: random.
	Name string
	// Stream is the JetStream stream holding the topics' logs; the node
	// creates it (and its key-value buckets, named after it) when missing.
	// Default "COURIER".
	Stream string
	// Prefix is the first token of every subject the cluster uses.
	// Default "courier".
	Prefix string
	// Replicas is the number of copies JetStream keeps of the stream and
	// buckets (1 to 5, at most the servers in the NATS cluster). Default 1.
	Replicas int
	// MaxAge bounds how long the stream keeps messages (0: no limit).
	MaxAge time.Duration
	// Dedupe is the window in which a publisher id is remembered across
	// the cluster. Default 2 minutes, as the bus's.
	Dedupe time.Duration
	// Timeout bounds each call to NATS that has no deadline of its own:
	// a publish fails with [ErrUnavailable] after it. Default 5 seconds.
	Timeout time.Duration
	// Heartbeat is how often the node tells the others it is alive.
	// Default 1 second.
	Heartbeat time.Duration
	// MemberGrace is how long after a node stops beating its members stay
	// in their rooms (the time a client has to resume elsewhere). Default
	// 2 minutes, the bridge's resume window.
	MemberGrace time.Duration
	// Logger receives the node's errors. Default: discarded.
	Logger *slog.Logger
}

// ErrUnavailable wraps the errors of a node that cannot reach NATS.
var ErrUnavailable = errors.New("cluster: NATS unavailable")

// Node is one bus's membership in a cluster: a [bus.Broker] on NATS. Make one
// with [New], give it to the bus with [bus.WithBroker], and close it after
// the bus.
type Node struct {
	cfg  Config
	nc   *nats.Conn
	js   jetstream.JetStream
	st   jetstream.Stream
	kvC  jetstream.KeyValue // durable consumer positions
	kvP  jetstream.KeyValue // presence: who is in which room, on which node
	log  *slog.Logger
	ep   uint64
	subj string // "<prefix>.m."

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	topics map[string]*topicLog
	feed   atomic.Pointer[feedRef] // the attached bus's; nil when none
	subs   []*nats.Subscription
	cc     jetstream.ConsumeContext
	seen   map[string]time.Time // other nodes' last heartbeat
	gone   map[string]bool      // nodes whose members were removed
	silent map[string]bool      // nodes whose queue groups were forgotten
	mine   map[[2]string]bool   // this node's queue groups: group, pattern
	closed bool
	shut   atomic.Bool // closed, for the Store methods
	fedAt  feedMark    // the last message the feed handed on
	stats  counters
}

// counters are the node's Stats, counted as they happen.
type counters struct {
	appended, batches, conflicts, failed atomic.Uint64
	epochs                               atomic.Uint64
	fed, feedSeq                         atomic.Uint64
	withdrawn, dropped                   atomic.Uint64
}

// Stats is what a node has done since New, for monitoring.
type Stats struct {
	// Connected tells whether the NATS connection is up now.
	Connected bool
	// Nodes counts the other nodes heard from within three heartbeats.
	Nodes int
	// Appended counts the messages this node stored in the shared log, in
	// Batches commits; Conflicts the commits tried again because another
	// node had appended to the topic; Failed the appends that returned an
	// error.
	Appended, Batches, Conflicts, Failed uint64
	// Epochs counts the new epochs this node started for topics whose
	// history went back (JetStream lost acknowledged messages).
	Epochs uint64
	// Fed counts the messages of the shared log handed to this node's bus;
	// FeedSeq is the stream position of the last one (compare it with the
	// stream's last sequence to see how far behind the node is).
	Fed, FeedSeq uint64
	// Withdrawn counts the withdrawals of silent nodes' queue-group shares
	// this node's bus has taken from the log since New (every surviving
	// node writes one for each silent node; each is counted). Dropped
	// counts the nodes whose members this node removed from their rooms
	// after MemberGrace.
	Withdrawn, Dropped uint64
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	s := Stats{
		Connected: n.nc.IsConnected(),
		Appended:  n.stats.appended.Load(),
		Batches:   n.stats.batches.Load(),
		Conflicts: n.stats.conflicts.Load(),
		Failed:    n.stats.failed.Load(),
		Epochs:    n.stats.epochs.Load(),
		Fed:       n.stats.fed.Load(),
		FeedSeq:   n.stats.feedSeq.Load(),
		Withdrawn: n.stats.withdrawn.Load(),
		Dropped:   n.stats.dropped.Load(),
	}
	n.mu.Lock()
	for _, at := range n.seen {
		if time.Since(at) <= 3*n.cfg.Heartbeat {
			s.Nodes++
		}
	}
	n.mu.Unlock()
	return s
}

// topicLog is what a node knows of one topic's shared log, for appending.
type topicLog struct {
	mu    sync.Mutex // guards queue, busy and seen
	queue []*pending // appends waiting for the next batch
	busy  bool       // a commit goroutine is running
	seen  position   // the highest this node saw given (see saw)

	// The topic's end as this node last knew it; the commit goroutine's.
	known  bool
	stream uint64 // stream sequence of the topic's last message
	seq    uint64 // the topic's last sequence number
	epoch  uint64 // the epoch of the topic's last message
	fork   bool   // the next commit starts a new epoch (see epoch.go)
	id     string // the commit's id, in its first message (see stored)
}

// Header names of a message in the stream.
const (
	hSeq  = "Courier-Seq"
	hNode = "Courier-Node"
	hTime = "Courier-Time"
	hMeta = "Courier-Meta"
	hErr  = "Courier-Error"
	hCode = "Courier-Code"
	hWait = "Courier-Timeout"
	// The epoch a message was given under, and the mark of the first
	// message of a new epoch (see epoch.go).
	hEpoch = "Courier-Epoch"
	hFork  = "Courier-Epoch-Start"
	// The id of the commit whose first message it is (see stored).
	hCommit = "Courier-Commit"
)

// New joins the cluster over nc, creating the stream and buckets if they do
// not exist. The node does not close nc.
func New(ctx context.Context, nc *nats.Conn, cfg Config) (*Node, error) {
	if cfg.Stream == "" {
		cfg.Stream = "COURIER"
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "courier"
	}
	if cfg.Name == "" {
		cfg.Name = randomName()
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Dedupe == 0 {
		cfg.Dedupe = 2 * time.Minute
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.MemberGrace == 0 {
		cfg.MemberGrace = 2 * time.Minute
	}
	if strings.ContainsAny(cfg.Name, ".*> \t") || strings.ContainsAny(cfg.Prefix, "*> \t") {
		return nil, fmt.Errorf("cluster: name %q or prefix %q has a character NATS subjects do not allow", cfg.Name, cfg.Prefix)
	}
	n := &Node{
		cfg:    cfg,
		nc:     nc,
		log:    cfg.Logger,
		subj:   cfg.Prefix + ".m.",
		topics: make(map[string]*topicLog),
		seen:   make(map[string]time.Time),
		gone:   make(map[string]bool),
		silent: make(map[string]bool),
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n.js = js
	if err := n.setup(ctx); err != nil {
		return nil, err
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n, nil
}

func randomName() string {
	var b [6]byte
	rand.Read(b[:])
	return "n" + hex.EncodeToString(b[:])
}

// setup creates or opens the stream and the buckets.
func (n *Node) setup(ctx context.Context) error {
	var ep [8]byte
	rand.Read(ep[:])
	ep[0] |= 1
	sc := jetstream.StreamConfig{
		Name:        n.cfg.Stream,
		Subjects:    []string{n.subj + ">", n.gsubj()},
		Storage:     jetstream.FileStorage,
		Replicas:    n.cfg.Replicas,
		MaxAge:      n.cfg.MaxAge,
		Duplicates:  n.cfg.Dedupe,
		AllowDirect: true,
		// Appends to one topic from one node go as atomic batches.
		AllowAtomicPublish: true,
		Metadata:           map[string]string{"courier_epoch": strconv.FormatUint(binary.BigEndian.Uint64(ep[:]), 10)},
	}
	st, err := retryPlacement(ctx, func() (jetstream.Stream, error) { return n.js.CreateStream(ctx, sc) })
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		st, err = n.js.Stream(ctx, n.cfg.Stream)
		if err == nil && (!st.CachedInfo().Config.AllowAtomicPublish || !slices.Contains(st.CachedInfo().Config.Subjects, n.gsubj())) {
			// A stream an older Courier made: let it take batches and
			// queue-group registrations.
			up := st.CachedInfo().Config
			up.AllowAtomicPublish = true
			if !slices.Contains(up.Subjects, n.gsubj()) {
				up.Subjects = append(up.Subjects, n.gsubj())
			}
			st, err = n.js.UpdateStream(ctx, up)
		}
	}
	if err != nil {
		return fmt.Errorf("%w: stream %s: %v", ErrUnavailable, n.cfg.Stream, err)
	}
	n.st = st
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("%w: stream %s: %v", ErrUnavailable, n.cfg.Stream, err)
	}
	n.ep, _ = strconv.ParseUint(info.Config.Metadata["courier_epoch"], 10, 64)
	if n.ep == 0 {
		// A stream made by someone else: name its history by its birth.
		n.ep = uint64(info.Created.UnixNano()) | 1
	}
	kv := func(suffix string, history uint8) (jetstream.KeyValue, error) {
		name := n.cfg.Stream + "_" + suffix
		b, err := retryPlacement(ctx, func() (jetstream.KeyValue, error) {
			return n.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: name, Storage: jetstream.FileStorage, Replicas: n.cfg.Replicas, History: history,
			})
		})
		if err != nil {
			return nil, fmt.Errorf("%w: bucket %s: %v", ErrUnavailable, name, err)
		}
		return b, nil
	}
	if n.kvC, err = kv("consumers", 1); err != nil {
		return err
	}
	n.kvP, err = kv("presence", 1)
	return err
}

// Stream returns the name of the JetStream stream holding the logs.
func (n *Node) Stream() string { return n.cfg.Stream }

// retryPlacement calls create until JetStream finds servers for the
// replicas or ctx ends: a NATS cluster that is starting, or has a server
// restarting, has too few peers for a moment.
func retryPlacement[T any](ctx context.Context, create func() (T, error)) (T, error) {
	for {
		v, err := create()
		var apiErr *jetstream.APIError
		if err == nil || !errors.As(err, &apiErr) || apiErr.ErrorCode != jsNoSuitablePeers {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// jsNoSuitablePeers is JetStream's error code for a stream whose replicas
// cannot be placed (yet).
const jsNoSuitablePeers = 10005

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Epoch returns the epoch of the cluster's history: the same on every node.
func (n *Node) Epoch() uint64 { return n.ep }

// Close leaves the cluster: the node stops receiving and its goroutines
// end. Its members stay in their rooms for MemberGrace, unless the node
// comes back under the same name first. Close the bus first.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.shut.Store(true)
	if n.feed.Load() != nil {
		// This node's queue groups go with it.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		n.publishGroup(ctx, n.cfg.Name, "", "", false)
		cancel()
	}
	subs, cc := n.subs, n.cc
	n.subs, n.cc = nil, nil
	n.mu.Unlock()
	n.cancel()
	if cc != nil {
		cc.Stop()
		<-cc.Closed()
	}
	for _, s := range subs {
		s.Unsubscribe()
	}
	n.wg.Wait()
	return nil
}
