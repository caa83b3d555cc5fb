package bus

import (
	"context"
	"fmt"
	"time"
)

// dedupeRec is a publisher id of a topic's de-duplication window.
type dedupeRec struct {
	id   string
	seq  uint64
	at   time.Time
	done chan struct{} // closed when seq is known or the publish failed
}

// claim reserves publisher id for a publish. It returns the sequence number
// of an earlier publish with the id within the window (and a nil record),
// or a record to release once this publish has its sequence number.
func (ts *topicState) claim(ctx context.Context, id string) (uint64, *dedupeRec, error) {
	for {
		ts.pubMu.Lock()
		ts.expireDedupe(time.Now())
		r := ts.dedupe[id]
		if r == nil {
			r = &dedupeRec{id: id, done: make(chan struct{})}
			ts.dedupe[id] = r
			ts.pubMu.Unlock()
			return 0, r, nil
		}
		ts.pubMu.Unlock()
		select {
		case <-r.done:
			if r.seq != 0 {
				return r.seq, nil, nil
			}
			// That publish failed: try to claim the id again.
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
}

// release records the outcome of a claimed publish (seq 0: it failed).
func (ts *topicState) release(r *dedupeRec, seq uint64) {
	if r == nil {
		return
	}
	ts.pubMu.Lock()
	r.seq, r.at = seq, time.Now()
	if seq == 0 {
		delete(ts.dedupe, r.id)
	} else {
		ts.dedupeQ = append(ts.dedupeQ, r)
	}
	ts.pubMu.Unlock()
	close(r.done)
}

// expireDedupe forgets publisher ids older than the window. Caller holds pubMu.
func (ts *topicState) expireDedupe(now time.Time) {
	n := 0
	for n < len(ts.dedupeQ) && now.Sub(ts.dedupeQ[n].at) > ts.b.cfg.dedupe {
		if ts.dedupe[ts.dedupeQ[n].id] == ts.dedupeQ[n] {
			delete(ts.dedupe, ts.dedupeQ[n].id)
		}
		n++
	}
	if n > 0 {
		clear(ts.dedupeQ[:n])
		ts.dedupeQ = ts.dedupeQ[n:]
	}
}

// dedupeWindow is the publisher ids of a topic's de-duplication window.
type dedupeWindow struct {
	ids   map[string]*dedupeRec
	queue []*dedupeRec
}

// loadDedupe reads the publisher ids of topic's window, up to seq last,
// from the store, so that de-duplication survives a restart.
func (b *Bus) loadDedupe(ctx context.Context, topic string, last uint64) (dedupeWindow, error) {
	dd := dedupeWindow{ids: make(map[string]*dedupeRec)}
	since := time.Now().Add(-b.cfg.dedupe)
	from, err := b.store.SeqAt(ctx, topic, since)
	if err != nil {
		return dd, fmt.Errorf("bus: open topic %q: %w", topic, err)
	}
	var buf []Record
	for from <= last {
		buf, err = b.store.Read(ctx, topic, from, 512, buf[:0])
		if err != nil || len(buf) == 0 {
			break // trimmed meanwhile: nothing left to remember
		}
		for _, r := range buf {
			if r.PublisherID != "" {
				d := &dedupeRec{id: r.PublisherID, seq: r.Seq, at: r.Time, done: make(chan struct{})}
				close(d.done)
				dd.ids[r.PublisherID] = d
				dd.queue = append(dd.queue, d)
			}
		}
		from = buf[len(buf)-1].Seq + 1
	}
	return dd, nil
}
