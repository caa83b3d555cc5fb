package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/courierbus/courier/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A topic's epoch is written in its messages: each carries the epoch it
// was given under (header Courier-Epoch; none, in messages of an older
// Courier, means the stream's epoch), and the topic's epoch is its last
// message's. JetStream can lose acknowledged messages (a power cut of
// servers that sync to disk every two minutes, the default), and the
// topic's end then goes back to a sequence number that was given before.
// A node must not give those numbers again under the same epoch. It knows
// the highest number it saw given per topic (its own appends, its feed, and
// positions clients present past the end: saw); when the end it reads is
// below that under the same epoch, its next commit starts a new epoch
// (header Courier-Epoch-Start on the first message). That commit names the
// end it read (the expected-last-subject-sequence check), so of two nodes
// that see the loss one starts the epoch and the other reads it back: every
// node agrees, since the epoch is in the log itself.

// position is a topic's (epoch, seq).
type position struct{ epoch, seq uint64 }

// saw records that seq was given under epoch.
func (l *topicLog) saw(epoch, seq uint64) {
	l.mu.Lock()
	if epoch != l.seen.epoch {
		l.seen = position{epoch, seq}
	} else {
		l.seen.seq = max(l.seen.seq, seq)
	}
	l.mu.Unlock()
}

// checkBehind starts a new epoch when the topic's end, as read, is below a
// number given under its epoch. Only the commit goroutine calls it.
func (n *Node) checkBehind(topic string, l *topicLog) {
	l.mu.Lock()
	seen := l.seen
	l.mu.Unlock()
	if l.fork || seen.epoch != l.epoch || seen.seq <= l.seq {
		return
	}
	old := l.epoch
	l.epoch, l.fork = newEpoch(), true
	n.stats.epochs.Add(1)
	n.log.Warn("cluster: the topic's history went back: a new epoch", "topic", topic,
		"end", l.seq, "seen", seen.seq, "epoch", old, "new", l.epoch)
}

func newEpoch() uint64 {
	var b [8]byte
	rand.Read(b[:])
	b[0] |= 1
	return binary.BigEndian.Uint64(b[:])
}

// stamp writes the epoch in m, the i-th message of a commit of k. The
// first and the last carry the commit's id; the first marks a new epoch.
func (l *topicLog) stamp(m *nats.Msg, i, k int) {
	m.Header.Set(hEpoch, strconv.FormatUint(l.epoch, 10))
	if i == 0 || i == k-1 {
		m.Header.Set(hCommit, l.id)
	}
	if i == 0 && l.fork {
		m.Header.Set(hFork, "1")
	}
}

// epochOf returns the epoch a message was given under.
func (n *Node) epochOf(h nats.Header) uint64 {
	if ep, err := strconv.ParseUint(h.Get(hEpoch), 10, 64); err == nil && ep != 0 {
		return ep
	}
	return n.ep
}

// topicEnd is a topic's last message: its stream sequence, its number, its
// epoch and the id of the commit it ends (0, 0, the stream's epoch and ""
// when there is none).
type topicEnd struct {
	stream, seq, epoch uint64
	commit             string
}

// end reads the topic's end from any replica (a direct get): it may be
// behind, which an append's expected-last-subject-sequence check catches.
func (n *Node) end(ctx context.Context, topic string) (topicEnd, error) {
	m, err := n.st.GetLastMsgForSubject(ctx, n.subject(topic))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return topicEnd{epoch: n.ep}, nil
	}
	if err != nil {
		return topicEnd{}, n.wrap(err)
	}
	var r bus.Record
	if err := decode(m.Header, nil, &r); err != nil {
		return topicEnd{}, err
	}
	return topicEnd{m.Sequence, r.Seq, n.epochOf(m.Header), m.Header.Get(hCommit)}, nil
}

// leaderMsg is a message the stream's leader returns.
type leaderMsg struct {
	Seq    uint64    `json:"seq"`
	Header []byte    `json:"hdrs"`
	Time   time.Time `json:"time"`
	h      nats.Header
}

// leaderGet asks the stream's leader (not any replica, as direct gets do)
// for a message: req is {"seq":n} or {"last_by_subj":subject}. It returns
// nil when there is no such message.
func (n *Node) leaderGet(ctx context.Context, req any) (*leaderMsg, error) {
	body, _ := json.Marshal(req)
	resp, err := n.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+n.cfg.Stream, body)
	if err != nil {
		return nil, n.wrap(err)
	}
	var r struct {
		Message *leaderMsg          `json:"message"`
		Error   *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return nil, fmt.Errorf("cluster: message get: %v", err)
	}
	switch {
	case r.Error != nil && r.Error.Code == 404:
		return nil, nil
	case r.Error != nil:
		return nil, fmt.Errorf("%w: message get: %v", ErrUnavailable, r.Error)
	case r.Message == nil:
		return nil, errors.New("cluster: message get: empty answer")
	}
	if len(r.Message.Header) > 0 {
		if r.Message.h, err = nats.DecodeHeadersMsg(r.Message.Header); err != nil {
			return nil, fmt.Errorf("cluster: message get: %v", err)
		}
	}
	return r.Message, nil
}

// Lost implements [bus.HistoryChecker]. p, of the epoch the bus has for
// topic and past its end, is lost when the stream's leader has the topic
// under another epoch or ending below p. The node then counts p as given,
// so that its next commit to the topic starts a new epoch. A client that
// makes up a position past the end can make a topic change epoch.
func (n *Node) Lost(ctx context.Context, topic string, p bus.Position) (bool, error) {
	if n.shut.Load() {
		return false, errClosed
	}
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	m, err := n.leaderGet(ctx, map[string]string{"last_by_subj": n.subject(topic)})
	if err != nil {
		return false, err
	}
	end := topicEnd{epoch: n.ep}
	if m != nil {
		var r bus.Record
		if err := decode(m.h, nil, &r); err != nil {
			return false, err
		}
		end = topicEnd{m.Seq, r.Seq, n.epochOf(m.h), ""}
	}
	if end.epoch != p.Epoch {
		return true, nil // the topic went on under a new epoch already
	}
	if end.seq >= p.Seq {
		return false, nil // the bus is behind the stream
	}
	n.logOf(topic).saw(p.Epoch, p.Seq)
	return true, nil
}

// feedMark is the stream position and time of the last message the feed
// handed on; set is false before the first and after the feed starts again
// (until it hands one on).
type feedMark struct {
	mu  sync.Mutex
	at  uint64
	ts  time.Time
	set bool
}

// restarted clears set: the position is behind the feed, which starts
// again from ts.
func (f *feedMark) restarted() {
	f.mu.Lock()
	f.set = false
	f.mu.Unlock()
}

func (f *feedMark) mark(seq uint64, ts time.Time) {
	f.mu.Lock()
	f.at, f.ts, f.set = seq, ts, true
	f.mu.Unlock()
}

func (f *feedMark) load() (uint64, time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at, f.ts, f.set
}

func (f *feedMark) seq() uint64 {
	s, _, _ := f.load()
	return s
}

// feedBehind reports whether the stream went back past what the feed
// handed on: the message at the feed's position is gone, or is another
// one. The feed then waits for stream sequence numbers that were given
// again and would miss what is stored under them; it must start again
// from the time of its last message. The stream's leader answers.
func (n *Node) feedBehind(ctx context.Context) (time.Time, bool) {
	seq, ts, ok := n.fedAt.load()
	if !ok {
		return time.Time{}, false
	}
	info, err := n.st.Info(ctx)
	if err != nil {
		return time.Time{}, false
	}
	switch {
	case info.State.LastSeq < seq:
	case info.State.FirstSeq > seq:
		return time.Time{}, false // retention took it
	default:
		m, err := n.leaderGet(ctx, map[string]uint64{"seq": seq})
		if err != nil || m != nil && m.Time.Equal(ts) {
			return time.Time{}, false
		}
	}
	return ts, true
}

// restartFeed starts the feed again at the stream's messages from time
// from on. What the bus already has of them it drops. Only watch calls it.
func (n *Node) restartFeed(from time.Time) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	old := n.cc
	n.cc = nil
	n.mu.Unlock()
	if old != nil {
		old.Stop()
		<-old.Closed()
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.Timeout)
	defer cancel()
	cc, err := n.consume(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{n.subj + ">", n.gsubj()},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
	})
	if err != nil {
		return err
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		cc.Stop()
		<-cc.Closed()
		return nil
	}
	n.cc = cc
	n.mu.Unlock()
	return nil
}

// watch checks the feed every heartbeat until Close.
func (n *Node) watch() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		n.watchFeed()
	}
}

// watchFeed starts the feed again when the stream went back past it, or
// when an earlier start failed.
func (n *Node) watchFeed() {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.Timeout)
	defer cancel()
	n.mu.Lock()
	down := n.cc == nil && !n.closed
	n.mu.Unlock()
	from, behind := n.feedBehind(ctx)
	if !behind && !down {
		return
	}
	if behind {
		n.log.Warn("cluster: the stream went back past the feed: reading it again from the time of its last message", "from", from)
	}
	_, ts, _ := n.fedAt.load()
	// A second earlier: a new leader's clock may be a little behind.
	if err := n.restartFeed(ts.Add(-time.Second)); err != nil {
		n.log.Warn("cluster: start the feed again", "err", err)
		return
	}
	n.fedAt.restarted()
}

// commitID returns a new commit's id.
func commitID() string {
	var b [8]byte
	rand.Read(b[:])
	return strconv.FormatUint(binary.BigEndian.Uint64(b[:]), 36)
}

// stored looks for commit id among the messages on subject after stream
// sequence after, up to end (the topic's end, read after a try of the
// commit was refused), and returns the number and epoch of its first
// message. A try may be stored although the node heard it refused: while
// a stream changes leader, a publish can reach the old leader and the new
// one, and the old one's refusal may come first. Trying it again would
// store it twice. A try stored later than end is after the end the next
// try names, which JetStream then refuses: the next look finds it.
func (n *Node) stored(ctx context.Context, subject string, after uint64, end topicEnd, id string, k int) (seq, epoch uint64, ok bool, err error) {
	if end.stream <= after {
		return 0, 0, false, nil
	}
	if end.commit == id {
		return end.seq - uint64(k) + 1, end.epoch, true, nil
	}
	// One batched read from a replica first; the leader's, a message at a
	// time, only when that replica had not yet reached end.
	var found *nats.Msg
	reached := false
	_, _, err = n.directBatch(ctx, subject, after+1, maxBatch, func(seq uint64, m *nats.Msg) error {
		if m.Header.Get(hCommit) == id && found == nil {
			found = m
		}
		reached = reached || seq >= end.stream
		return nil
	})
	if err == nil && (found != nil || reached) {
		if found == nil {
			return 0, 0, false, nil
		}
		var r bus.Record
		if err := decode(found.Header, nil, &r); err != nil {
			return 0, 0, false, err
		}
		return r.Seq, n.epochOf(found.Header), true, nil
	}
	for at := after + 1; at < end.stream; {
		m, err := n.leaderGet(ctx, map[string]any{"seq": at, "next_by_subj": subject})
		if err != nil || m == nil || m.Seq >= end.stream {
			return 0, 0, false, err
		}
		if m.h.Get(hCommit) == id {
			var r bus.Record
			if err := decode(m.h, nil, &r); err != nil {
				return 0, 0, false, err
			}
			return r.Seq, n.epochOf(m.h), true, nil
		}
		at = m.Seq + 1
	}
	return 0, 0, false, nil
}
