package bridge

import (
	"errors"
	"sync"

	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
)

// catchupQueue holds the sessions that have subscriptions behind the live
// stream: after a resume, a subscribe from a past position, or deliveries
// held back by a full window or outbound queue. A few workers serve it,
// reading history a chunk at a time, so a session costs no goroutine.
type catchupQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	q      []*session
	closed bool
}

func (q *catchupQueue) init() { q.cond.L = &q.mu }

func (q *catchupQueue) push(s *session) {
	q.mu.Lock()
	if !q.closed {
		q.q = append(q.q, s)
		q.cond.Signal()
	}
	q.mu.Unlock()
}

// pop waits for a session; nil once the queue is closed.
func (q *catchupQueue) pop() *session {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.q) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil
	}
	s := q.q[0]
	q.q[0] = nil
	q.q = q.q[1:]
	return s
}

func (q *catchupQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.q = nil
	q.cond.Broadcast()
	q.mu.Unlock()
}

func (b *Bridge) catchupLoop() {
	for {
		s := b.cq.pop()
		if s == nil {
			return
		}
		b.catchup(s)
	}
}

// chunk is one history read for a stream.
type chunk struct {
	c     *conn
	cs    *csub
	st    *stream
	from  uint64
	limit int
}

// pick returns a stream that is behind and has room to send. Caller holds
// s.mu.
func (s *session) pick() (chunk, bool) {
	if s.ended || s.c == nil {
		return chunk{}, false
	}
	if s.c.soft() || s.sendRedo() {
		return chunk{}, false // woken again when the queue drains
	}
	for _, cs := range s.subs {
		room := 256
		if !cs.volatile {
			room = min(room, cs.window-cs.outstanding())
		}
		if room <= 0 {
			cs.starved = true
			continue
		}
		for _, st := range cs.streams {
			if !st.synced {
				return chunk{c: s.c, cs: cs, st: st, from: st.next, limit: room}, true
			}
		}
	}
	return chunk{}, false
}

// catchup sends a few chunks of history to s, then puts s back at the end
// of the queue if it is still behind, so that sessions take turns.
func (b *Bridge) catchup(s *session) {
	for range 4 {
		s.mu.Lock()
		ch, ok := s.pick()
		if !ok {
			s.inq = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		msgs, err := b.bus.Read(b.ctx, ch.st.topic, ch.from, ch.limit)
		var first uint64
		if errors.Is(err, bus.ErrNotCovered) {
			first, err = b.firstHeld(ch.st.topic, ch.from)
		}
		// The end of history, unless tails stops short of it.
		end := len(msgs) < ch.limit
		tails := b.tails(msgs)
		if len(tails) < len(msgs) {
			msgs, end = msgs[:len(tails)], false
		}
		s.mu.Lock()
		if s.c != ch.c || ch.cs.ended || ch.st.next != ch.from || ch.st.synced {
			s.mu.Unlock()
			continue // changed meanwhile: look again
		}
		switch {
		case err != nil:
			s.inq = false
			s.mu.Unlock()
			if !errorsIsClosed(err) {
				b.log.Error("bridge: read history", "topic", ch.st.topic, "seq", ch.from, "err", err)
			}
			return
		case first != 0:
			s.resync(ch.cs, ch.st, first)
		default:
			s.sendChunk(ch, msgs, tails, end)
		}
		s.mu.Unlock()
	}
	b.cq.push(s)
}

// tails encodes messages read from history under no lock (the topic's
// codec is the host's code), as many as the connection can take before
// catch-up waits for it (half its outbound limit), and at least one. A
// message that does not encode has a nil tail, and is logged.
func (b *Bridge) tails(msgs []bus.Message[any]) [][]byte {
	if len(msgs) == 0 {
		return nil
	}
	tails := make([][]byte, 0, len(msgs))
	size := 0
	for i := range msgs {
		if size >= b.cfg.outbound/2 {
			break
		}
		m := &msgs[i]
		data, err := m.Data()
		if err != nil {
			b.log.Error("bridge: encode message", "topic", m.Topic(), "seq", m.Seq(), "err", err)
			tails = append(tails, nil)
			continue
		}
		tail := b.tail(m, data)
		tails = append(tails, tail)
		size += len(tail)
	}
	return tails
}

// sendChunk delivers messages read from history, with their tails; end
// tells that they reach the end of history. Caller holds s.mu.
func (s *session) sendChunk(ch chunk, msgs []bus.Message[any], tails [][]byte, end bool) {
	cs, st := ch.cs, ch.st
	for i := range msgs {
		m := &msgs[i]
		seq := m.Seq()
		if seq != st.next {
			continue
		}
		if ep := m.Position().Epoch; ep != st.epoch {
			st.epoch = ep
			s.resync(cs, st, seq)
		}
		if !m.Reaches(s.member) {
			st.next++
			continue
		}
		if !cs.volatile && cs.outstanding() >= cs.window {
			cs.starved = true
			return
		}
		tail := tails[i]
		if tail == nil { // does not encode
			st.next++
			continue
		}
		if cs.volatile {
			s.c.sendMsg(cs.quoted, 0, 1, tail)
		} else {
			s.deliver(cs, st, seq, tail, 1)
		}
		st.next++
		if s.c.soft() {
			return
		}
	}
	if end && st.known < st.next {
		// Read to the end of history, and nothing newer arrived live
		// meanwhile: from here the route delivers.
		st.synced = true
		st.known = 0
	}
}

// resync tells the client that history lost what st was owed before seq,
// and moves st there. Caller holds s.mu.
func (s *session) resync(cs *csub, st *stream, seq uint64) {
	st.next = seq
	if st.known < seq {
		st.known = 0
	}
	if s.c == nil {
		return
	}
	topic, _ := s.b.clientName(st.topic)
	f := wire.Frame{Op: wire.OpResync, Sub: cs.id, Topic: topic, Epoch: wire.Epoch(st.epoch), Seq: seq}
	if frame, err := wire.Encode(&f); err == nil {
		s.c.sendFrame(frame)
	}
}

// firstHeld returns the oldest sequence number at or after from that the
// history of topic still holds (the next one to be published when it holds
// none).
func (b *Bridge) firstHeld(topic string, from uint64) (uint64, error) {
	bd, err := b.bus.Bounds(b.ctx, topic)
	if err != nil {
		return 0, err
	}
	return max(from, bd.First), nil
}
