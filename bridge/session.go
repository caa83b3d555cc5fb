package bridge

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
)

// session is a client's state: it outlives its connection for the resume
// window. Its lock orders before conn.outMu, and is never taken while
// b.mu, b.lifeMu or b.routeMu is held. Nothing that may wait runs under
// it: no bus call that may reach the store or the broker, no host code
// (hooks, codecs, log handlers).
type session struct {
	b      *Bridge
	id     string
	ident  Identity
	member *bus.Member
	token  string

	mu       sync.Mutex
	c        *conn             // the attached connection, nil while detached
	subs     map[string]*csub  // made by the first subscribe
	watching map[string]*watch // by bus room
	expire   *time.Timer       // runs while detached
	ackTimer *time.Timer
	ackAt    int64 // when ackTimer fires, on the bridge's clock; 0 when idle
	ended    bool
	inq      bool  // on the catch-up queue
	since    int64 // when c was attached or the last one detached, on the bridge's clock
	resumes  int   // times a client resumed the session
	away     bool  // watchers were told it is away; changed under b.presMu
	sreqs    map[string]chan *wire.Frame
	nreqs    int // client requests in progress
}

// csub is one client subscription.
type csub struct {
	s          *session
	id         string
	quoted     []byte // id as a JSON string
	pattern    string // as the client named it
	exact      bool
	volatile   bool
	window     int
	ackWait    time.Duration
	maxDeliver int
	rt         *route
	streams    map[string]*stream // by bus topic
	inflight   []delivery         // in the order sent, so by n
	redo       []delivery         // to send again on this connection, by seq
	nextN      uint64
	starved    bool // a delivery waited for window room
	pending    bool // subscribing: not in s.subs yet
	ended      bool
}

// stream is one topic of a subscription: where delivery stands in it.
type stream struct {
	topic  string // bus name
	epoch  uint64
	next   uint64 // next seq to consider
	known  uint64 // highest seq seen published while not synced
	synced bool   // every message from next on arrives live from the route
}

// delivery is a message sent and not yet acknowledged.
type delivery struct {
	n       uint64
	st      *stream
	seq     uint64
	tail    []byte
	due     int64 // when it is sent again, on the bridge's clock
	attempt int
}

// newSession makes a session for identity id: with a new session id, or
// sid, the id of a session another bridge sharing the SessionKey made.
func (b *Bridge) newSession(c *conn, id Identity, sid string) (*session, error) {
	if sid == "" {
		sid = newID()
	}
	m, err := b.bus.Member(sid)
	if err != nil {
		return nil, err
	}
	m.SetInfo(id.ID) // presence shows the user, on every node of a cluster
	s := &session{b: b, id: sid, ident: id, member: m, token: b.token(sid, id.ID)}
	b.mu.Lock()
	if b.sessions[sid] != nil {
		// Two connections adopting one token at once: the second gets a
		// session of its own.
		b.mu.Unlock()
		return b.newSession(c, id, "")
	}
	b.sessions[sid] = s
	b.mu.Unlock()
	return s, nil
}

// attach makes c the session's connection. Caller holds s.mu.
func (s *session) attach(c *conn) (old *conn) {
	old = s.c
	s.c = c
	s.since = s.b.now()
	if s.expire != nil {
		s.expire.Stop()
		s.expire = nil
	}
	c.sess.Store(s)
	return old
}

// detach runs when c has ended: the session waits for a resume.
func (s *session) detach(c *conn) {
	s.mu.Lock()
	if s.c != c || s.ended {
		s.mu.Unlock()
		return
	}
	s.c = nil
	s.since = s.b.now()
	for id, ch := range s.sreqs {
		close(ch)
		delete(s.sreqs, id)
	}
	if s.ackTimer != nil {
		s.ackTimer.Stop()
		s.ackAt = 0
	}
	window := s.b.cfg.resumeWindow
	if window > 0 {
		s.expire = time.AfterFunc(window, s.expired)
	}
	s.mu.Unlock()
	if window == 0 {
		s.end()
		return
	}
	s.b.announce(s)
}

func (s *session) expired() {
	if !s.b.enter(&s.b.wg) {
		return // Close ends every session
	}
	defer s.b.wg.Done()
	s.mu.Lock()
	stale := s.c == nil && !s.ended
	s.mu.Unlock()
	if stale {
		s.end()
	}
}

// end ends the session for good: its subscriptions end and its member
// leaves every room. It returns the error of the member's leaving, which
// it logs too.
func (s *session) end() error {
	b := s.b
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return nil
	}
	s.ended = true
	subs := s.subs
	s.subs = nil
	for _, cs := range subs {
		cs.ended = true
	}
	watching := s.watching
	s.watching = nil
	if s.expire != nil {
		s.expire.Stop()
	}
	if s.ackTimer != nil {
		s.ackTimer.Stop()
	}
	for id, ch := range s.sreqs {
		close(ch)
		delete(s.sreqs, id)
	}
	s.mu.Unlock()
	for _, cs := range subs {
		b.release(cs)
	}
	for _, w := range watching {
		b.unwatch(w, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := s.member.Remove(ctx)
	cancel()
	if err != nil && !errorsIsClosed(err) {
		b.log.Warn("bridge: remove member", "session", s.id, "err", err)
		err = fmt.Errorf("bridge: session %s: remove member: %w", s.id, err)
	} else {
		err = nil
	}
	b.mu.Lock()
	if b.sessions[s.id] == s {
		delete(b.sessions, s.id)
	}
	b.mu.Unlock()
	b.stats.sessionsEnded.Add(1)
	return err
}

// wantCatchup puts the session on the catch-up queue. Caller holds s.mu.
func (s *session) wantCatchup() {
	if !s.inq && !s.ended && s.c != nil {
		s.inq = true
		s.b.cq.push(s)
	}
}

// stream returns the subscription's stream of topic, creating it at seq.
func (cs *csub) stream(topic string, epoch, seq uint64) *stream {
	st := cs.streams[topic]
	if st == nil {
		st = &stream{topic: topic, epoch: epoch, next: seq, synced: true}
		if cs.streams == nil {
			cs.streams = make(map[string]*stream, 1)
		}
		cs.streams[topic] = st
	}
	return st
}

// offer is the fan-out of one live message to one subscription. Caller
// holds no lock. tail is the shared encoding of the message.
func (s *session) offer(cs *csub, m *bus.Message[any], tail []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || cs.ended {
		return
	}
	seq := m.Seq()
	if cs.pending {
		// Not subscribed yet: note it, catch-up sends it once it is.
		if seq != 0 {
			st := cs.stream(m.Topic(), m.Position().Epoch, seq)
			st.synced, st.known = false, max(st.known, seq)
		}
		return
	}
	if seq == 0 { // a volatile publish: now or never
		if s.c != nil && m.Reaches(s.member) {
			s.c.sendMsg(cs.quoted, 0, 1, tail)
		}
		return
	}
	pos := m.Position()
	st := cs.stream(m.Topic(), pos.Epoch, seq)
	if pos.Epoch != st.epoch {
		// The topic's history went back to seq-1 and goes on under a new
		// epoch (a cluster lost acknowledged messages): what this
		// subscription had from seq on is gone.
		st.epoch = pos.Epoch
		if st.next > seq {
			s.resync(cs, st, seq)
		}
	}
	if !st.synced {
		if seq >= st.next && seq > st.known {
			st.known = seq
		}
		s.wantCatchup()
		return
	}
	if seq < st.next {
		return // already delivered by catch-up
	}
	// Synced: every message between next and seq went to this
	// subscription's route and did not reach this member.
	st.next = seq
	if !m.Reaches(s.member) {
		st.next++
		return
	}
	if cs.volatile {
		if s.c != nil {
			s.c.sendMsg(cs.quoted, 0, 1, tail)
		}
		st.next++
		return
	}
	if s.c == nil || cs.outstanding() >= cs.window || len(cs.redo) > 0 || s.c.soft() {
		// Held back: catch-up sends it from history when there is room
		// (and after the deliveries sent again).
		st.synced, st.known = false, seq
		if cs.outstanding() >= cs.window {
			cs.starved = true
		} else {
			s.wantCatchup()
		}
		return
	}
	s.deliver(cs, st, seq, tail, 1)
	st.next++
}

// outstanding counts the deliveries not acknowledged.
func (cs *csub) outstanding() int { return len(cs.inflight) + len(cs.redo) }

// deliver sends an at-least-once delivery. Caller holds s.mu; s.c is set.
func (s *session) deliver(cs *csub, st *stream, seq uint64, tail []byte, attempt int) {
	cs.nextN++
	due := s.b.now() + int64(cs.ackWait)
	cs.inflight = append(cs.inflight, delivery{n: cs.nextN, st: st, seq: seq, tail: tail, attempt: attempt, due: due})
	if s.c.sendMsg(cs.quoted, cs.nextN, attempt, tail) {
		s.armAck(due)
	}
}

// armAck makes the ack timer fire by t. Caller holds s.mu.
func (s *session) armAck(t int64) {
	if s.ackAt != 0 && t >= s.ackAt {
		return
	}
	s.ackAt = t
	d := max(time.Duration(t-s.b.now()), time.Millisecond)
	if s.ackTimer == nil {
		s.ackTimer = time.AfterFunc(d, s.ackDue)
	} else {
		s.ackTimer.Reset(d)
	}
}

// ackDue sends again the deliveries whose ack wait (or nack delay) passed.
func (s *session) ackDue() {
	if !s.b.enter(&s.b.wg) {
		return
	}
	defer s.b.wg.Done()
	s.mu.Lock()
	gaveUp := s.ackDueLocked()
	s.mu.Unlock()
	// Logged under no lock: a log handler is the host's code.
	for _, g := range gaveUp {
		s.b.log.Warn("bridge: delivery given up", "session", s.id, "sub", g.sub, "topic", g.st.topic, "seq", g.seq, "attempts", g.attempt)
	}
}

// givenUp is a delivery that reached its subscription's max_deliver.
type givenUp struct {
	sub string
	delivery
}

// ackDueLocked is ackDue under s.mu; it returns the deliveries it gave up.
func (s *session) ackDueLocked() (gaveUp []givenUp) {
	s.ackAt = 0
	if s.ended || s.c == nil {
		return nil
	}
	now := s.b.now()
	var next int64
	for _, cs := range s.subs {
		var due []delivery
		for _, d := range cs.inflight {
			if d.due <= now {
				due = append(due, d)
			} else if next == 0 || d.due < next {
				next = d.due
			}
		}
		if len(due) == 0 {
			continue
		}
		cs.inflight = slices.DeleteFunc(cs.inflight, func(d delivery) bool { return d.due <= now })
		for _, d := range due {
			if cs.maxDeliver > 0 && d.attempt >= cs.maxDeliver {
				gaveUp = append(gaveUp, givenUp{cs.id, d})
				continue
			}
			cs.redo = append(cs.redo, d)
		}
		slices.SortStableFunc(cs.redo, func(a, b delivery) int { return cmpU64(a.seq, b.seq) })
		if cs.starved && cs.outstanding() < cs.window {
			cs.starved = false
			s.wantCatchup()
		}
	}
	if s.sendRedo() {
		s.wantCatchup()
	}
	if next != 0 {
		s.armAck(next)
	}
	return gaveUp
}

// ack settles deliveries: one (n), or every one up to upto.
func (s *session) ack(cs *csub, n, upto uint64) {
	if upto > 0 {
		i := 0
		for i < len(cs.inflight) && cs.inflight[i].n <= upto {
			i++
		}
		if i > 0 {
			clear(cs.inflight[:i])
			cs.inflight = cs.inflight[i:]
		}
	}
	if n > 0 {
		if i, ok := slices.BinarySearchFunc(cs.inflight, n, func(d delivery, n uint64) int { return cmpU64(d.n, n) }); ok {
			cs.inflight = slices.Delete(cs.inflight, i, i+1)
		}
	}
	if cs.starved && cs.outstanding() < cs.window {
		cs.starved = false
		s.wantCatchup()
	}
}

// nack schedules delivery n to be sent again after delay.
func (s *session) nack(cs *csub, n uint64, delay time.Duration) {
	i, ok := slices.BinarySearchFunc(cs.inflight, n, func(d delivery, n uint64) int { return cmpU64(d.n, n) })
	if !ok {
		return
	}
	d := &cs.inflight[i]
	d.due = s.b.now() + int64(delay)
	s.armAck(d.due)
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// resend queues again, in order, every delivery not acknowledged when the
// session's previous connection ended, and sends what the new connection's
// queue takes; catch-up sends the rest. Caller holds s.mu; s.c is the new
// connection.
func (s *session) resend() {
	for _, cs := range s.subs {
		if cs.volatile || len(cs.inflight) == 0 {
			continue
		}
		cs.redo = append(cs.redo, cs.inflight...)
		cs.inflight = nil
		slices.SortStableFunc(cs.redo, func(a, b delivery) int { return cmpU64(a.seq, b.seq) })
	}
	s.sendRedo()
}

// sendRedo sends queued redeliveries while the connection's queue has
// room; it reports whether any are left. Caller holds s.mu; s.c is set.
func (s *session) sendRedo() bool {
	left := false
	for _, cs := range s.subs {
		for len(cs.redo) > 0 {
			if s.c.soft() {
				left = true
				break
			}
			d := cs.redo[0]
			cs.redo[0] = delivery{}
			cs.redo = cs.redo[1:]
			s.deliver(cs, d.st, d.seq, d.tail, d.attempt+1)
		}
		if len(cs.redo) == 0 {
			cs.redo = nil
		}
	}
	return left
}
