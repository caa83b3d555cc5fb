package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierbus/courier/bus"
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

// ---- the shared log

// recordMeta is the Courier part of a message in the stream, beyond its seq,
// time and data.
type recordMeta struct {
	PublisherID  string            `json:"pid,omitempty"`
	Headers      map[string]string `json:"h,omitempty"`
	To           []string          `json:"to,omitempty"`
	Except       []string          `json:"ex,omitempty"`
	ExceptMember string            `json:"exm,omitempty"`
}

func (n *Node) subject(topic string) string { return n.subj + topic }

// gsubj is the subject of queue-group registrations, in the stream so
// that every node applies them at the same point of the log.
func (n *Node) gsubj() string { return n.cfg.Prefix + ".g" }

func (n *Node) logOf(topic string) *topicLog {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.topics[topic]
	if l == nil {
		l = &topicLog{}
		n.topics[topic] = l
	}
	return l
}

func (n *Node) msg(subject string, r *bus.Record) (*nats.Msg, error) {
	m := nats.NewMsg(subject)
	m.Data = r.Data
	m.Header.Set(hNode, n.cfg.Name)
	m.Header.Set(hTime, strconv.FormatInt(r.Time.UnixNano(), 10))
	if r.PublisherID != "" || r.Headers != nil || r.To != nil || r.Except != nil || r.ExceptMember != "" {
		md, err := json.Marshal(recordMeta{r.PublisherID, r.Headers, r.To, r.Except, r.ExceptMember})
		if err != nil {
			return nil, err
		}
		m.Header.Set(hMeta, string(md))
	}
	return m, nil
}

// decode reads a record from a message's headers and data.
func decode(h nats.Header, data []byte, r *bus.Record) error {
	seq, err := strconv.ParseUint(h.Get(hSeq), 10, 64)
	if err != nil && h.Get(hSeq) != "" {
		return fmt.Errorf("cluster: bad %s header: %v", hSeq, err)
	}
	r.Seq = seq
	if h.Get(hFork) != "" {
		r.Epoch, _ = strconv.ParseUint(h.Get(hEpoch), 10, 64)
	}
	ns, _ := strconv.ParseInt(h.Get(hTime), 10, 64)
	r.Time = time.Unix(0, ns)
	r.Data = data
	if md := h.Get(hMeta); md != "" {
		var m recordMeta
		if err := json.Unmarshal([]byte(md), &m); err != nil {
			return fmt.Errorf("cluster: bad %s header: %v", hMeta, err)
		}
		r.PublisherID, r.Headers, r.To, r.Except, r.ExceptMember = m.PublisherID, m.Headers, m.To, m.Except, m.ExceptMember
	}
	return nil
}

func (n *Node) wrap(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) && n.nc.IsConnected() {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// errClosed is what the Store methods return after Close.
var errClosed = fmt.Errorf("cluster: node %w", bus.ErrClosed)

// bounded gives ctx a deadline of Timeout when it has none.
func (n *Node) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, n.cfg.Timeout)
}

// last reads the topic's last message from the stream: its stream and
// topic sequence numbers (0, 0 when there is none).
func (n *Node) last(ctx context.Context, topic string) (stream, seq uint64, err error) {
	return n.lastSeq(ctx, n.subject(topic))
}

// lastSeq reads the last message on subject: its stream sequence and its
// Courier sequence number, if it has one (0, 0 when there is none).
func (n *Node) lastSeq(ctx context.Context, subject string) (stream, seq uint64, err error) {
	m, err := n.st.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, n.wrap(err)
	}
	var r bus.Record
	if err := decode(m.Header, nil, &r); err != nil {
		return 0, 0, err
	}
	return m.Sequence, r.Seq, nil
}

// Topic implements [bus.Store].
func (n *Node) Topic(ctx context.Context, topic string) (bus.TopicState, error) {
	if n.shut.Load() {
		return bus.TopicState{}, errClosed
	}
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	st, _, err := n.bounds(ctx, topic)
	return st, err
}

// bounds reads the topic's first and last messages: its state, and the
// stream sequence of its last message (0 when it has none).
func (n *Node) bounds(ctx context.Context, topic string) (bus.TopicState, uint64, error) {
	e, err := n.end(ctx, topic)
	if err != nil {
		return bus.TopicState{}, 0, fmt.Errorf("cluster: topic %q: %w", topic, err)
	}
	st := bus.TopicState{Epoch: e.epoch, Last: e.seq}
	if e.seq > 0 {
		m, err := n.st.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(n.subject(topic)))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			st.First = 0
		case err != nil:
			return bus.TopicState{}, 0, fmt.Errorf("cluster: topic %q: %w", topic, n.wrap(err))
		default:
			var r bus.Record
			if err := decode(m.Header, nil, &r); err != nil {
				return bus.TopicState{}, 0, err
			}
			st.First = r.Seq
		}
	}
	return st, e.stream, nil
}

// Append implements [bus.Store]: it gives the record the topic's next
// sequence number in the shared log. Each append names the stream position
// of the topic's last message (JetStream's expected-last-subject-sequence
// check); two nodes appending to one topic at once race on it, and the
// loser reads the new end and tries again, so every number is given once.
// Appends to one topic from one node are committed together: while one
// goes to JetStream the next ones queue, and go as one atomic batch (one
// round trip; all stored or none).
func (n *Node) Append(ctx context.Context, topic string, r bus.Record) (uint64, error) {
	seq, _, err := n.AppendEpoch(ctx, topic, r)
	return seq, err
}

// AppendEpoch implements [bus.EpochAppender]: Append, and the epoch the
// record was given under.
func (n *Node) AppendEpoch(ctx context.Context, topic string, r bus.Record) (seq, epoch uint64, err error) {
	if n.shut.Load() {
		return 0, 0, errClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	l := n.logOf(topic)
	p := &pending{r: r, done: make(chan struct{})}
	l.mu.Lock()
	l.queue = append(l.queue, p)
	lead := !l.busy
	l.busy = true
	l.mu.Unlock()
	if lead {
		n.mu.Lock()
		closed := n.closed
		if !closed {
			n.wg.Add(1)
		}
		n.mu.Unlock()
		if closed {
			// No goroutine may start now: fail what queued behind this.
			l.mu.Lock()
			q := l.queue
			l.queue, l.busy = nil, false
			l.mu.Unlock()
			for _, p := range q {
				p.err = errClosed
				close(p.done)
			}
			return 0, 0, errClosed
		}
		go func() {
			defer n.wg.Done()
			n.commit(topic, l)
		}()
	}
	select {
	case <-p.done:
		return p.seq, p.epoch, p.err
	case <-ctx.Done():
		// It may still be stored: a publish that failed may be delivered,
		// as at-least-once allows.
		return 0, 0, ctx.Err()
	}
}

// pending is an append waiting for its commit.
type pending struct {
	r          bus.Record
	seq, epoch uint64
	err        error
	done       chan struct{}
}

// Bounds of one atomic batch (JetStream allows 1000 messages).
const (
	maxBatch      = 256
	maxBatchBytes = 512 << 10
)

// commit sends the topic's queued appends, batch after batch, until none
// is left.
func (n *Node) commit(topic string, l *topicLog) {
	for {
		l.mu.Lock()
		k, size := 0, 0
		for k < len(l.queue) && k < maxBatch {
			p := l.queue[k]
			// A publisher id goes alone: JetStream de-duplicates it.
			if p.r.PublisherID != "" && k > 0 || size+len(p.r.Data) > maxBatchBytes && k > 0 {
				break
			}
			size += len(p.r.Data)
			k++
			if p.r.PublisherID != "" {
				break
			}
		}
		if k == 0 {
			l.busy = false
			l.mu.Unlock()
			return
		}
		batch := l.queue[:k:k]
		l.queue = l.queue[k:]
		l.mu.Unlock()
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.Timeout)
		first, epoch, err := n.appendBatch(ctx, topic, l, batch)
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, ErrUnavailable) {
			// Connected, but no quorum committed it in time (the node's
			// server is on the minority side of a partition, or the
			// stream has no leader yet).
			err = fmt.Errorf("%w: not committed within %v: %v", ErrUnavailable, n.cfg.Timeout, err)
		}
		cancel()
		if err != nil {
			n.stats.failed.Add(uint64(len(batch)))
		}
		for i, p := range batch {
			if err != nil {
				p.err = fmt.Errorf("cluster: append to %q: %w", topic, err)
			} else {
				p.seq, p.epoch = first+uint64(i), epoch
			}
			close(p.done)
		}
	}
}

// appendBatch stores the records of batch as the topic's next messages and
// returns the sequence number of the first. Only commit calls it, one at a
// time per topic: l's log position is its own.
func (n *Node) appendBatch(ctx context.Context, topic string, l *topicLog, batch []*pending) (first, epoch uint64, err error) {
	subject := n.subject(topic)
	l.id = commitID()
	refused := false // a try was refused: it may be stored all the same
	for {
		if n.shut.Load() {
			return 0, 0, errClosed
		}
		if !l.known {
			e, err := n.end(ctx, topic)
			if err != nil {
				return 0, 0, err
			}
			if refused {
				// Is the refused try among what came since it?
				first, epoch, ok, err := n.stored(ctx, subject, l.stream, e, l.id, len(batch))
				if err != nil {
					return 0, 0, err
				}
				if ok {
					l.saw(epoch, first+uint64(len(batch))-1)
					n.stats.appended.Add(uint64(len(batch)))
					n.stats.batches.Add(1)
					return first, epoch, nil
				}
			}
			l.stream, l.seq, l.epoch, l.fork = e.stream, e.seq, e.epoch, false
			l.known = true
		}
		n.checkBehind(topic, l)
		var stream uint64
		var dup bool
		if len(batch) == 1 {
			stream, dup, err = n.publishOne(ctx, subject, l, batch[0].r)
		} else {
			stream, err = n.publishBatch(ctx, subject, l, batch)
		}
		var apiErr *jetstream.APIError
		switch {
		case err == nil && dup:
			// The id was published within the window: its number stands.
			old, err := n.st.GetMsg(ctx, stream)
			if err != nil {
				return 0, 0, n.wrap(err)
			}
			var or bus.Record
			if err := decode(old.Header, nil, &or); err != nil {
				return 0, 0, err
			}
			return or.Seq, n.epochOf(old.Header), nil
		case err == nil:
			first := l.seq + 1
			l.stream = stream
			l.seq += uint64(len(batch))
			l.fork = false
			l.saw(l.epoch, l.seq)
			n.stats.appended.Add(uint64(len(batch)))
			n.stats.batches.Add(1)
			return first, l.epoch, nil
		case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == 10164):
			l.known = false // another node appended: read the log's end again
			refused = true
			n.stats.conflicts.Add(1)
		default:
			l.known = false
			return 0, 0, n.wrap(err)
		}
		if ctx.Err() != nil {
			return 0, 0, n.wrap(ctx.Err())
		}
	}
}

// publishOne stores one record; dup reports a publisher id seen within
// the window (stream is then the first publish's).
func (n *Node) publishOne(ctx context.Context, subject string, l *topicLog, r bus.Record) (stream uint64, dup bool, err error) {
	m, err := n.msg(subject, &r)
	if err != nil {
		return 0, false, err
	}
	m.Header.Set(hSeq, strconv.FormatUint(l.seq+1, 10))
	l.stamp(m, 0, 1)
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(l.stream)}
	if r.PublisherID != "" {
		// JetStream remembers ids per stream; the bus, per topic.
		opts = append(opts, jetstream.WithMsgID(strings.TrimPrefix(subject, n.subj)+" "+r.PublisherID))
	}
	ack, err := n.js.PublishMsg(ctx, m, opts...)
	if err != nil {
		return 0, false, err
	}
	return ack.Sequence, ack.Duplicate, nil
}

// publishBatch stores the records as one atomic batch: the first message
// names the topic's last position, the others follow it in the same
// commit, so their numbers are consecutive.
func (n *Node) publishBatch(ctx context.Context, subject string, l *topicLog, batch []*pending) (uint64, error) {
	var id [12]byte
	rand.Read(id[:])
	bid := hex.EncodeToString(id[:])
	for i, p := range batch {
		m, err := n.msg(subject, &p.r)
		if err != nil {
			return 0, err
		}
		m.Header.Set(hSeq, strconv.FormatUint(l.seq+1+uint64(i), 10))
		l.stamp(m, i, len(batch))
		m.Header.Set("Nats-Batch-Id", bid)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if i == 0 {
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(l.stream, 10))
		}
		if i < len(batch)-1 {
			if err := n.nc.PublishMsg(m); err != nil {
				return 0, err
			}
			continue
		}
		m.Header.Set("Nats-Batch-Commit", "1")
		resp, err := n.nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return 0, err
		}
		var ack struct {
			Error *jetstream.APIError `json:"error"`
			Seq   uint64              `json:"seq"`
			Count int                 `json:"count"`
		}
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return 0, fmt.Errorf("cluster: batch acknowledgement: %v", err)
		}
		if ack.Error != nil {
			return 0, ack.Error
		}
		if ack.Count != len(batch) {
			return 0, fmt.Errorf("cluster: a batch of %d stored %d", len(batch), ack.Count)
		}
		return ack.Seq, nil
	}
	return 0, errors.New("cluster: empty batch")
}

// find returns the stream sequence and the sequence number of the first
// message of topic, up to stream sequence hi, for which key holds (key
// must be false, then true, along the topic); 0, 0 when there is none.
func (n *Node) find(ctx context.Context, topic string, hi uint64, key func(*bus.Record) bool) (stream, seq uint64, err error) {
	subj := n.subject(topic)
	lo := uint64(1)
	for lo <= hi {
		mid := lo + (hi-lo)/2
		m, err := n.st.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			hi = mid - 1
			continue
		}
		if err != nil {
			return 0, 0, n.wrap(err)
		}
		var r bus.Record
		if err := decode(m.Header, nil, &r); err != nil {
			return 0, 0, err
		}
		if key(&r) {
			stream, seq = m.Sequence, r.Seq
			hi = mid - 1
		} else {
			lo = m.Sequence + 1
		}
	}
	return stream, seq, nil
}

// Read implements [bus.Store].
func (n *Node) Read(ctx context.Context, topic string, from uint64, limit int, buf []bus.Record) ([]bus.Record, error) {
	if n.shut.Load() {
		return buf, errClosed
	}
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	st, end, err := n.bounds(ctx, topic)
	if err != nil {
		return buf, err
	}
	if from == 0 {
		from = 1
	}
	if st.Last == 0 || from > st.Last || limit <= 0 {
		return buf, nil
	}
	if st.First == 0 || from < st.First {
		return buf, fmt.Errorf("%w: topic %q seq %d (the shared log starts at %d)", bus.ErrNotCovered, topic, from, st.First)
	}
	at, _, err := n.find(ctx, topic, end, func(r *bus.Record) bool { return r.Seq >= from })
	if err != nil || at == 0 {
		return buf, err
	}
	subj := n.subject(topic)
	for limit > 0 && at <= end {
		got, next, err := n.getBatch(ctx, subj, at, min(limit, maxBatch), &buf)
		if err != nil {
			return buf, err
		}
		if got == 0 {
			break
		}
		limit -= got
		at = next
	}
	return buf, nil
}

// getBatch reads up to k messages on subject from stream sequence from on,
// in one request (JetStream's batched direct get), appending their records
// to buf. It returns how many it read and the stream sequence after the
// last one.
func (n *Node) getBatch(ctx context.Context, subject string, from uint64, k int, buf *[]bus.Record) (int, uint64, error) {
	return n.directBatch(ctx, subject, from, k, func(_ uint64, m *nats.Msg) error {
		var r bus.Record
		if err := decode(m.Header, m.Data, &r); err != nil {
			return err
		}
		*buf = append(*buf, r)
		return nil
	})
}

// directBatch is getBatch handing each message, with its stream sequence,
// to each.
func (n *Node) directBatch(ctx context.Context, subject string, from uint64, k int, each func(seq uint64, m *nats.Msg) error) (int, uint64, error) {
	req, _ := json.Marshal(struct {
		Seq   uint64 `json:"seq"`
		Next  string `json:"next_by_subj"`
		Batch int    `json:"batch"`
	}{from, subject, k})
	inbox := n.nc.NewRespInbox()
	sub, err := n.nc.SubscribeSync(inbox)
	if err != nil {
		return 0, 0, n.wrap(err)
	}
	defer sub.Unsubscribe()
	if err := n.nc.PublishRequest("$JS.API.DIRECT.GET."+n.cfg.Stream, inbox, req); err != nil {
		return 0, 0, n.wrap(err)
	}
	got, next := 0, from
	for got < k {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return got, next, n.wrap(err)
		}
		switch m.Header.Get("Status") {
		case "":
		case "204": // end of the batch
			return got, next, nil
		case "404": // nothing (more) on the subject
			return got, next, nil
		default:
			return got, next, fmt.Errorf("cluster: direct get: %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		if err != nil {
			return got, next, fmt.Errorf("cluster: direct get: bad Nats-Sequence: %v", err)
		}
		if err := each(seq, m); err != nil {
			return got, next, err
		}
		got++
		next = seq + 1
	}
	// The end-of-batch message follows the last one; it is dropped with
	// the subscription.
	return got, next, nil
}

// SeqAt implements [bus.Store].
func (n *Node) SeqAt(ctx context.Context, topic string, t time.Time) (uint64, error) {
	if n.shut.Load() {
		return 0, errClosed
	}
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	end, last, err := n.last(ctx, topic)
	if err != nil || end == 0 {
		return last + 1, err
	}
	at, seq, err := n.find(ctx, topic, end, func(r *bus.Record) bool { return !r.Time.Before(t) })
	if err != nil {
		return 0, err
	}
	if at == 0 {
		return last + 1, nil
	}
	return seq, nil
}

// ---- durable consumers

func key(parts ...string) string {
	for i, p := range parts {
		parts[i] = base64.RawURLEncoding.EncodeToString([]byte(p))
	}
	return strings.Join(parts, ".")
}

// Consumer implements [bus.Store]: positions live in a key-value bucket,
// so a durable consumer has one position in the whole cluster.
func (n *Node) Consumer(ctx context.Context, topic, name string) (bus.ConsumerState, bool, error) {
	if n.shut.Load() {
		return bus.ConsumerState{}, false, errClosed
	}
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	e, err := n.kvC.Get(ctx, key(topic, name))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return bus.ConsumerState{}, false, nil
	}
	if err != nil {
		return bus.ConsumerState{}, false, fmt.Errorf("cluster: consumer %q of %q: %w", name, topic, n.wrap(err))
	}
	var s bus.ConsumerState
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return bus.ConsumerState{}, false, fmt.Errorf("cluster: consumer %q of %q: %v", name, topic, err)
	}
	return s, true, nil
}

// SaveConsumer implements [bus.Store].
func (n *Node) SaveConsumer(ctx context.Context, topic, name string, s bus.ConsumerState) error {
	if n.shut.Load() {
		return errClosed
	}
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	v, _ := json.Marshal(s)
	if _, err := n.kvC.Put(ctx, key(topic, name), v); err != nil {
		return fmt.Errorf("cluster: save consumer %q of %q: %w", name, topic, n.wrap(err))
	}
	return nil
}

// DeleteConsumer implements [bus.Store].
func (n *Node) DeleteConsumer(ctx context.Context, topic, name string) error {
	if n.shut.Load() {
		return errClosed
	}
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	if err := n.kvC.Purge(ctx, key(topic, name)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("cluster: delete consumer %q of %q: %w", name, topic, n.wrap(err))
	}
	return nil
}

// ---- receiving

func (n *Node) onRecord(m jetstream.Msg) {
	if md, err := m.Metadata(); err == nil {
		n.fedAt.mark(md.Sequence.Stream, md.Timestamp)
	}
	if m.Subject() == n.gsubj() {
		n.onGroup(m.Headers(), true)
		return
	}
	topic, ok := strings.CutPrefix(m.Subject(), n.subj)
	if !ok {
		return
	}
	var r bus.Record
	if err := decode(m.Headers(), m.Data(), &r); err != nil || r.Seq == 0 {
		n.log.Error("cluster: a message in the stream is not Courier's", "subject", m.Subject(), "err", err)
		return
	}
	n.logOf(topic).saw(n.epochOf(m.Headers()), r.Seq)
	n.fed().Record(topic, r)
	n.stats.fed.Add(1)
	n.stats.feedSeq.Store(n.fedAt.seq())
}

// PublishVolatile implements [bus.VolatileBroker]: at-most-once, over
// NATS core, to the other nodes.
func (n *Node) PublishVolatile(ctx context.Context, topic string, r bus.Record) error {
	m, err := n.msg(n.cfg.Prefix+".v."+topic, &r)
	if err != nil {
		return err
	}
	if err := n.nc.PublishMsg(m); err != nil {
		return n.wrap(err)
	}
	return nil
}

func (n *Node) onVolatile(m *nats.Msg) {
	if m.Header.Get(hNode) == n.cfg.Name {
		return
	}
	topic, ok := strings.CutPrefix(m.Subject, n.cfg.Prefix+".v.")
	if !ok {
		return
	}
	var r bus.Record
	if err := decode(m.Header, m.Data, &r); err != nil {
		return
	}
	n.fed().Volatile(topic, r)
}

// ---- presence

type presence struct {
	Room   string `json:"room"`
	Member string `json:"member"`
	Info   string `json:"info,omitempty"`
	Node   string `json:"node"`
}

// SharePresence implements [bus.PresenceBroker].
func (n *Node) SharePresence(ctx context.Context, room, member, info string, joined bool) error {
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	k := key(room, member)
	var err error
	if joined {
		v, _ := json.Marshal(presence{room, member, info, n.cfg.Name})
		_, err = n.kvP.Put(ctx, k, v)
	} else {
		err = n.kvP.Delete(ctx, k)
	}
	if err != nil {
		return n.wrap(err)
	}
	return nil
}

func (n *Node) watchPresence(w jetstream.KeyWatcher) {
	defer n.wg.Done()
	defer w.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue // the initial values are all in
			}
			room, member, ok := splitKey(e.Key())
			if !ok {
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				n.fed().Presence(room, member, "", false)
				continue
			}
			var p presence
			if json.Unmarshal(e.Value(), &p) != nil {
				continue
			}
			if p.Node == n.cfg.Name {
				// The member is this node's now (a session taken over
				// from another node): no longer another node's.
				n.fed().Presence(room, member, "", false)
				continue
			}
			n.fed().Presence(room, member, p.Info, true)
		}
	}
}

func splitKey(k string) (room, member string, ok bool) {
	a, b, ok := strings.Cut(k, ".")
	if !ok {
		return "", "", false
	}
	r, err1 := base64.RawURLEncoding.DecodeString(a)
	m, err2 := base64.RawURLEncoding.DecodeString(b)
	return string(r), string(m), err1 == nil && err2 == nil
}

// beat tells the others this node is alive, and removes the members of
// nodes that stopped beating more than MemberGrace ago.
func (n *Node) beat() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Heartbeat)
	defer t.Stop()
	for {
		n.nc.Publish(n.cfg.Prefix+".hb", []byte(n.cfg.Name))
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		var dead, silent []string
		n.mu.Lock()
		for name, at := range n.seen {
			if now.Sub(at) > 3*n.cfg.Heartbeat && !n.silent[name] {
				n.silent[name] = true
				silent = append(silent, name)
			}
			if now.Sub(at) > n.cfg.MemberGrace+3*n.cfg.Heartbeat && !n.gone[name] {
				n.gone[name] = true
				dead = append(dead, name)
			}
		}
		n.mu.Unlock()
		for _, name := range silent {
			// A silent node's queue groups get nothing more: the others
			// share its part. Every node says so; saying it twice is
			// harmless.
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.Timeout)
			if err := n.publishGroup(ctx, name, "", "", false); err != nil {
				n.log.Warn("cluster: forget the groups of a silent node", "node", name, "err", err)
			}
			cancel()
		}
		for _, name := range dead {
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.Timeout)
			n.dropMembers(ctx, name)
			cancel()
		}
	}
}

func (n *Node) onBeat(m *nats.Msg) {
	name := string(m.Data)
	if name == n.cfg.Name {
		return
	}
	n.mu.Lock()
	n.seen[name] = time.Now()
	delete(n.gone, name)
	delete(n.silent, name)
	n.mu.Unlock()
}

// dropMembers removes from their rooms the members of node name. Every
// surviving node does it; deleting twice is harmless.
func (n *Node) dropMembers(ctx context.Context, name string) {
	lister, err := n.kvP.ListKeys(ctx)
	if err != nil {
		n.log.Warn("cluster: list presence", "err", err)
		return
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	for _, k := range keys {
		e, err := n.kvP.Get(ctx, k)
		if err != nil {
			continue
		}
		var p presence
		if json.Unmarshal(e.Value(), &p) == nil && p.Node == name {
			n.kvP.Delete(ctx, k, jetstream.LastRevision(e.Revision()))
		}
	}
}
