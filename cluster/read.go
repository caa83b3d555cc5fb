package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/courierbus/courier/bus"
	"github.com/nats-io/nats.go"
)

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
