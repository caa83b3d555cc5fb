package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/courierbus/courier/bus"
	"github.com/nats-io/nats.go/jetstream"
)

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
