package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/courierbus/courier/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

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
