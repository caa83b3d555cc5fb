package client

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/courierbus/courier/bridge/internal/wire"
)

// Headers the bridge sets on every message a client publishes, naming the
// publisher; no client can set or forge them (the bridge drops a client's
// headers whose names start with "courier-"). Messages the server's host
// published in-process carry whatever headers it gave them.
const (
	// HeaderUser is the identity the server authenticated for the
	// publisher; absent for anonymous clients.
	HeaderUser = wire.HeaderUser
	// HeaderSession is the publisher's session id: its member id in rooms
	// and presence.
	HeaderSession = wire.HeaderSession
)

// Message is one delivery to a subscription's handler. Data is the
// message's JSON as the server sent it, and shares memory with the
// WebSocket message it came in, which other deliveries may share too: it
// may be kept, but keeping it keeps that whole WebSocket message (copy it
// with bytes.Clone to keep only Data). The handler may keep the Message.
type Message struct {
	Sub     string            // the subscription's id
	Topic   string            // the topic it was published to
	Epoch   uint64            // with Seq, the message's position in its topic
	Seq     uint64            // 0 for a volatile publish
	Rooms   []string          // the rooms it was addressed to, if any
	Headers map[string]string // the publisher's headers, if any
	Data    json.RawMessage   // the message (raw bytes when the topic does not use JSON)
	Attempt int               // 1, or more for a redelivery
}

// Handler handles one message of a subscription. Returning nil
// acknowledges it; an error (or a panic) asks the server to send it again
// after a backoff.
type Handler func(ctx context.Context, m *Message) error

// Subscription is a subscription of a [Client]. Its handler runs on one
// goroutine, one message at a time. Messages a handler already handled are
// not handed to it again, even when the server sends them again after a
// reconnect: per topic the subscription remembers the highest sequence
// number handled.
type Subscription struct {
	c       *Client
	id      string
	pattern string
	exact   bool
	cfg     subConfig
	h       Handler

	mu     sync.Mutex
	q      []queued
	wake   chan struct{}
	quit   chan struct{}
	done   chan struct{}
	ended  bool
	hwm    map[string]position
	failed map[string]map[uint64]int // topic → seq → attempts that failed
}

type position struct{ epoch, seq uint64 }

// queued is a message or a resync waiting for the handler, with the
// session it came in: delivery numbers count from 1 in every new session,
// so an ack belongs to the session of its delivery and to no other.
type queued struct {
	m       *Message // for a resync: its Topic, Epoch and Seq
	n       uint64   // the delivery number; 0 for volatile deliveries and resyncs
	resync  bool
	session string
}

// ID returns the subscription's id (the "sub" of its frames).
func (s *Subscription) ID() string { return s.id }

// Done returns a channel closed when the subscription's goroutine has
// returned, after Unsubscribe or Close.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Subscribe subscribes to pattern (a topic, or a pattern with '*' and
// '>') and calls h for each message. It returns once the server confirmed
// the subscription, or with its refusal (ErrForbidden, ErrInvalidName,
// ErrLimit...). If the connection drops before the answer, the
// subscription is made again on reconnect and Subscribe returns it.
func (c *Client) Subscribe(ctx context.Context, pattern string, h Handler, opts ...SubscribeOption) (*Subscription, error) {
	var cfg subConfig
	for _, o := range opts {
		o.applySub(&cfg)
	}
	s := &Subscription{
		c: c, pattern: pattern, cfg: cfg, h: h, exact: !hasWildcard(pattern),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		hwm: make(map[string]position), failed: make(map[string]map[uint64]int),
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.nextID++
	s.id = "s" + strconv.FormatUint(c.nextID, 10)
	c.subs[s.id] = s
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		defer close(s.done)
		s.run()
	}()
	f := s.frame(false)
	_, err := c.call(ctx, &f)
	if err != nil && err != ErrDisconnected {
		c.mu.Lock()
		delete(c.subs, s.id)
		c.mu.Unlock()
		s.stop()
		return nil, err
	}
	return s, nil
}

func hasWildcard(p string) bool {
	for i := 0; i < len(p); i++ {
		if (p[i] == '*' || p[i] == '>') && (i == 0 || p[i-1] == '.') && (i == len(p)-1 || p[i+1] == '.') {
			return true
		}
	}
	return false
}

// frame returns the subscribe frame; again is true when it re-creates the
// subscription in a new session: it then starts after the last message
// handled, when there is one.
func (s *Subscription) frame(again bool) wire.Frame {
	f := wire.Frame{
		Op: wire.OpSubscribe, Sub: s.id, Pattern: s.pattern, Volatile: s.cfg.volatile,
		MaxInflight: s.cfg.maxInflight, AckWait: s.cfg.ackWait.Milliseconds(),
		Start: s.cfg.start, Seq: s.cfg.seq, Epoch: wire.Epoch(s.cfg.epoch),
	}
	if again && s.exact && !s.cfg.volatile {
		s.mu.Lock()
		p, ok := s.hwm[s.pattern]
		s.mu.Unlock()
		if ok {
			f.Start, f.Epoch, f.Seq = wire.StartAfter, wire.Epoch(p.epoch), p.seq
		}
	}
	return f
}

// Unsubscribe ends the subscription. It does not wait for a running
// handler (a handler may unsubscribe its own subscription); see Done.
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	c := s.c
	c.mu.Lock()
	_, ok := c.subs[s.id]
	delete(c.subs, s.id)
	c.mu.Unlock()
	s.stop()
	if !ok {
		return nil
	}
	_, err := c.call(ctx, &wire.Frame{Op: wire.OpUnsubscribe, Sub: s.id})
	if err == ErrDisconnected || err == ErrClosed {
		return nil // a resumed session drops it on reconnect
	}
	return err
}

func (s *Subscription) stop() {
	s.mu.Lock()
	if !s.ended {
		s.ended = true
		close(s.quit)
	}
	s.mu.Unlock()
}

// push queues a message or resync frame that came in session, from the
// link's reader. It keeps nothing of f, which the reader reuses.
func (s *Subscription) push(session string, f *wire.Frame) {
	s.mu.Lock()
	if s.ended || s.cfg.volatile && len(s.q) >= 4096 {
		s.mu.Unlock()
		return
	}
	e := queued{m: &Message{
		Sub: s.id, Topic: f.Topic, Epoch: uint64(f.Epoch), Seq: f.Seq, Rooms: f.To,
		Headers: f.Headers, Data: f.Data, Attempt: max(f.Attempt, 1),
	}, n: f.N, resync: f.Op == wire.OpResync, session: session}
	if len(f.Data64) > 0 {
		e.m.Data = f.Data64
	}
	if len(f.Rooms) > 0 {
		e.m.Rooms = f.Rooms
	}
	s.q = append(s.q, e)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Subscription) next() (queued, bool) {
	for {
		s.mu.Lock()
		if len(s.q) > 0 {
			e := s.q[0]
			s.q[0] = queued{}
			s.q = s.q[1:]
			s.mu.Unlock()
			return e, true
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-s.quit:
			return queued{}, false
		case <-s.c.ctx.Done():
			return queued{}, false
		}
	}
}

func (s *Subscription) run() {
	var upto uint64    // deliveries handled and not yet acknowledged, up to this n
	var session string // the session of those deliveries
	pending := 0
	flush := func() {
		if pending > 0 {
			s.ack(session, &wire.Frame{Op: wire.OpAck, Sub: s.id, Upto: upto})
			pending = 0
		}
	}
	for {
		e, ok := s.peek()
		if !ok {
			flush()
			e, ok = s.next()
			if !ok {
				return
			}
		}
		if e.session != session {
			flush() // a cumulative ack covers one session's deliveries only
			session = e.session
		}
		m := e.m
		if e.resync {
			s.mu.Lock()
			p := s.hwm[m.Topic]
			if p.epoch != m.Epoch || p.seq+1 < m.Seq {
				s.hwm[m.Topic] = position{m.Epoch, m.Seq - 1}
			}
			s.mu.Unlock()
			continue
		}
		var err error
		if !s.handled(m) {
			err = s.call(m)
			s.record(m, err)
		}
		switch {
		case e.n == 0:
		case err == nil && !s.failing():
			// Acknowledge cumulatively while the queue has more: one
			// frame for a run of messages.
			upto = e.n
			if pending++; pending >= 128 {
				flush()
			}
		default:
			flush()
			s.settle(session, e.n, m.Attempt, err)
		}
	}
}

// peek takes the next queued frame without waiting.
func (s *Subscription) peek() (queued, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.q) == 0 || s.ended {
		return queued{}, false
	}
	e := s.q[0]
	s.q[0] = queued{}
	s.q = s.q[1:]
	return e, true
}

// failing reports whether a delivery that failed waits to be sent again:
// a cumulative ack would settle it too.
func (s *Subscription) failing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.failed {
		if len(m) > 0 {
			return true
		}
	}
	return false
}

// handled reports whether m is a message the handler already handled.
func (s *Subscription) handled(m *Message) bool {
	if m.Seq == 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.hwm[m.Topic]
	if !ok || p.epoch != m.Epoch || m.Seq > p.seq {
		return false
	}
	_, failed := s.failed[m.Topic][m.Seq]
	return !failed
}

func (s *Subscription) record(m *Message, err error) {
	if m.Seq == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fails := s.failed[m.Topic]
	if err != nil {
		if fails == nil {
			fails = make(map[uint64]int)
			s.failed[m.Topic] = fails
		}
		fails[m.Seq]++
	} else if fails != nil {
		delete(fails, m.Seq)
	}
	p, ok := s.hwm[m.Topic]
	if !ok || p.epoch != m.Epoch || m.Seq > p.seq {
		s.hwm[m.Topic] = position{m.Epoch, m.Seq}
	}
}

func (s *Subscription) call(m *Message) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("client: handler panicked: %v", v)
			s.c.log.Error("client: handler panicked", "sub", s.id, "panic", v)
		}
	}()
	return s.h(s.c.ctx, m)
}

// settle acks or nacks delivery n, attempt attempt, that came in session.
func (s *Subscription) settle(session string, n uint64, attempt int, err error) {
	a := wire.Frame{Op: wire.OpAck, Sub: s.id, N: n}
	if err != nil {
		a.Op = wire.OpNack
		a.Delay = min(100*time.Millisecond<<min(max(attempt-1, 0), 6), 5*time.Second).Milliseconds()
	}
	s.ack(session, &a)
}

// ack sends an ack or nack of deliveries that came in session on the
// current link, if it serves that session. Without a link it is dropped:
// the server sends the deliveries again after the resume, and they are
// acknowledged then. In another session it is dropped too: that session
// numbers its deliveries from 1 again, and the ack would settle one of
// them instead; the earlier session's deliveries are gone with it.
func (s *Subscription) ack(session string, a *wire.Frame) {
	c := s.c
	c.mu.Lock()
	l := c.cur
	same := c.session == session
	c.mu.Unlock()
	if l != nil && same {
		c.send(l, a)
	}
}
