package bridge

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/olahol/melody"

	"github.com/courierbus/courier/bridge/internal/wire"
)

const connKey = "courier.conn"

// writer takes one batch at a time: melody's session, which calls onSent
// once the batch is written.
type writer interface{ Write([]byte) error }

// conn is one WebSocket connection. Its read side (handle*) runs on
// melody's read loop; its write side is melody's write goroutine, fed one
// batch at a time from the conn's outbound buffer. An idle connection
// costs little memory: the conn holds no timer (the clock loop enforces
// the hello timeout), no rate limiter objects (buckets on the bridge's
// clock), and no channel until it is closed.
type conn struct {
	b      *Bridge
	ident  Identity
	remote string // the request's RemoteAddr
	ms     *melody.Session
	w      writer // ms, or a stand-in in benchmarks
	ws     *websocket.Conn
	lim    bucket // frames; used on the read loop only
	sess   atomic.Pointer[session]
	acks   atomic.Int64 // deliveries sent and not yet answered by an ack or nack
	// counted is the identity this connection counts against with
	// MaxConnections, from its hello to its end. Guarded by b.identMu.
	counted string

	outMu       sync.Mutex
	buf         *[]byte // frames waiting: '[' then frames separated by ','
	nframes     int
	queued      int     // bytes waiting plus bytes being written
	writing     *[]byte // the batch melody is writing, nil when idle
	wlen        int
	killed      bool // no more frames
	closing     bool // the closer runs
	dead        bool // the connection has ended
	closeCode   int  // closeAfter: close once the queue is written
	closeReason string
	drain       bool          // a sender held back at the soft limit: wake catch-up below it
	slowWhy     string        // why the connection is closed as slow, logged by the closer
	bad         bucket        // strikes
	done        chan struct{} // made for the closer; closed when the connection has ended

	closer sync.WaitGroup
}

func newConn(b *Bridge, id Identity, remote string) *conn {
	now := b.now()
	return &conn{
		b:      b,
		ident:  id,
		remote: remote,
		lim:    bucket{tokens: float64(b.cfg.burst), last: now},
		bad:    bucket{tokens: float64(b.cfg.strikeBurst), last: now},
	}
}

// bucket is a token bucket on the bridge's coarse clock.
type bucket struct {
	tokens float64 // at last
	last   int64   // the bridge's clock, ns
}

// allow takes a token if there is one; the bucket refills at rate tokens
// per second, up to burst.
func (k *bucket) allow(now int64, rate float64, burst int) bool {
	if now > k.last {
		k.tokens = min(float64(burst), k.tokens+float64(now-k.last)*rate/float64(time.Second))
		k.last = now
	}
	if k.tokens < 1 {
		return false
	}
	k.tokens--
	return true
}

// allowFrame spends the frame rate. Read loop only.
func (c *conn) allowFrame() bool {
	return c.lim.allow(c.b.now(), c.b.cfg.rate, c.b.cfg.burst)
}

// strike counts a refused frame; false when the strike budget is spent.
func (c *conn) strike() bool {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.bad.allow(c.b.now(), c.b.cfg.strikeRate, c.b.cfg.strikeBurst)
}

// connOf returns the conn of a melody session, nil once it has ended.
func (b *Bridge) connOf(ms *melody.Session) *conn {
	v, _ := b.byMS.Load(ms)
	c, _ := v.(*conn)
	return c
}

// onConnect runs on the connection's goroutine before its read loop. The
// conn comes in melody's keys, a map of a few hundred bytes that the
// bridge does not keep: from here on it finds the conn in b.byMS.
func (b *Bridge) onConnect(ms *melody.Session) {
	c, _ := ms.Keys[connKey].(*conn)
	ms.Keys = nil
	ms.Request = nil // the bridge keeps nothing of the request
	if c == nil {
		return
	}
	b.byMS.Store(ms, c)
	c.outMu.Lock()
	c.ms, c.w, c.ws = ms, ms, ms.WebsocketConnection()
	killed := c.closing
	c.outMu.Unlock()
	b.stats.accepted.Add(1)
	if killed {
		// Closed while upgrading: end it at once.
		c.ws.Close()
		return
	}
	b.awaitHello(c)
}

// finish runs on the connection's goroutine after melody's read loop ended.
func (c *conn) finish() {
	if c.ms != nil {
		c.b.byMS.Delete(c.ms)
	}
	c.outMu.Lock()
	c.killed, c.dead = true, true
	c.buf, c.nframes = nil, 0
	done := c.done
	c.outMu.Unlock()
	if done != nil {
		close(done)
	}
	c.closer.Wait()
	c.b.unadmit(c)
	if s := c.sess.Load(); s != nil {
		s.detach(c)
	}
}

// admit counts c as one of identity id's connections; false when id has
// MaxConnections open already. A connection replacing another of the
// same session is let in: the old one leaves when it has ended.
func (b *Bridge) admit(c *conn, id string, replacing bool) bool {
	if b.cfg.maxConns == 0 || id == "" {
		return true
	}
	b.identMu.Lock()
	defer b.identMu.Unlock()
	if !replacing && b.identConns[id] >= b.cfg.maxConns {
		return false
	}
	b.identConns[id]++
	c.counted = id
	return true
}

// unadmit stops counting c against its identity.
func (b *Bridge) unadmit(c *conn) {
	if b.cfg.maxConns == 0 {
		return
	}
	b.identMu.Lock()
	defer b.identMu.Unlock()
	if id := c.counted; id != "" {
		c.counted = ""
		if b.identConns[id]--; b.identConns[id] <= 0 {
			delete(b.identConns, id)
		}
	}
}

// kill closes the connection with a close frame, without waiting: a client
// that does not read gets no close frame within a second and its socket is
// closed. Frames still queued are dropped. It never calls into melody, so it
// may run in melody's callbacks.
func (c *conn) kill(code int, reason string) {
	c.outMu.Lock()
	c.buf, c.nframes = nil, 0
	c.killLocked(code, reason)
}

// killSlow kills the connection as slow.
func (c *conn) killSlow(why string) {
	c.outMu.Lock()
	c.slowWhy = why
	c.buf, c.nframes = nil, 0
	c.killLocked(wire.CloseSlow, "slow")
}

// closeAfter closes the connection like kill once the frames already queued
// (an error frame explaining the close) are written.
func (c *conn) closeAfter(code int, reason string) {
	c.outMu.Lock()
	if c.killed || c.dead {
		c.outMu.Unlock()
		return
	}
	c.killed = true
	c.closeCode, c.closeReason = code, reason
	if c.writing == nil && c.nframes == 0 {
		c.killed = false
		c.killLocked(code, reason)
		return
	}
	batch := c.take()
	c.outMu.Unlock()
	if batch != nil {
		c.w.Write(batch)
	}
}

// killLocked starts the closer. Caller holds outMu; it is released.
func (c *conn) killLocked(code int, reason string) {
	if c.dead || c.closing {
		c.outMu.Unlock()
		return
	}
	c.killed, c.closing = true, true
	ws := c.ws
	if ws == nil {
		// Not upgraded yet: onConnect closes it.
		c.outMu.Unlock()
		return
	}
	c.closer.Add(1)
	if c.done == nil {
		c.done = make(chan struct{})
	}
	done, slowWhy := c.done, c.slowWhy
	c.outMu.Unlock()
	go func() {
		defer c.closer.Done()
		if code == wire.CloseSlow {
			// Logged here, under no lock: the caller may hold its session's.
			c.b.log.Info("bridge: slow client disconnected", "remote", c.remote, "why", slowWhy)
		}
		msg := websocket.FormatCloseMessage(code, reason)
		if err := ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
			ws.Close()
			return
		}
		// Give the client a moment to answer the close frame, so that it
		// reads the code before the socket goes.
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			ws.Close()
		}
	}()
}

func (c *conn) isWriting() bool {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.writing != nil
}

func (c *conn) isKilled() bool {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.killed
}

// soft reports whether the outbound queue is past half its limit: at-least-
// once deliveries then wait (for catch-up) instead of queueing.
func (c *conn) soft() bool {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.queued >= c.b.cfg.outbound/2 {
		c.drain = true
		return true
	}
	return false
}

// sendFrame queues an encoded frame. It returns false when the connection
// is closing or the frame made the queue pass its limit (the connection is
// then closed as slow).
func (c *conn) sendFrame(frame []byte) bool {
	c.outMu.Lock()
	if !c.reserve() {
		c.outMu.Unlock()
		return false
	}
	*c.buf = append(*c.buf, frame...)
	return c.commit()
}

// sendMsg queues a message frame: its head is written here, its tail is
// the shared encoding of the message.
func (c *conn) sendMsg(quotedSub []byte, n uint64, attempt int, tail []byte) bool {
	c.outMu.Lock()
	if !c.reserve() {
		c.outMu.Unlock()
		return false
	}
	*c.buf = wire.AppendMessageHead(*c.buf, quotedSub, n, attempt)
	*c.buf = append(*c.buf, tail...)
	if n != 0 {
		c.acks.Add(1)
	}
	return c.commit()
}

// reserve prepares the buffer for one more frame. Caller holds outMu.
func (c *conn) reserve() bool {
	if c.killed {
		return false
	}
	if c.buf == nil {
		c.buf = c.b.writePl.Get().(*[]byte)
		*c.buf = append((*c.buf)[:0], '[')
	}
	if c.nframes > 0 {
		*c.buf = append(*c.buf, ',')
	}
	return true
}

// commit accounts for the frame just appended and starts a write if none
// is running. Caller holds outMu; commit releases it.
func (c *conn) commit() bool {
	c.nframes++
	c.queued = c.wlen + len(*c.buf) - 1
	if c.queued > c.b.cfg.outbound {
		c.b.stats.slow.Add(1)
		c.slowWhy = fmt.Sprintf("%d bytes queued, limit %d", c.queued, c.b.cfg.outbound)
		c.buf, c.nframes = nil, 0
		c.killLocked(wire.CloseSlow, "slow")
		return false
	}
	batch := c.take()
	c.outMu.Unlock()
	if batch != nil {
		c.w.Write(batch)
	}
	return true
}

// take hands the waiting frames to melody when it is idle: one frame as
// itself, several as a JSON array. Caller holds outMu.
func (c *conn) take() []byte {
	if c.writing != nil || c.nframes == 0 || c.w == nil {
		return nil
	}
	buf := c.buf
	msg := (*buf)[1:]
	if c.nframes > 1 {
		*buf = append(*buf, ']')
		msg = *buf
	}
	c.writing, c.wlen = buf, len(msg)
	c.queued = c.wlen
	c.b.stats.framesOut.Add(uint64(c.nframes))
	c.buf, c.nframes = nil, 0
	return msg
}

// onSent runs on melody's write goroutine after a batch was written.
func (b *Bridge) onSent(ms *melody.Session, _ []byte) {
	if c := b.connOf(ms); c != nil {
		c.sent()
	}
}

// sent starts the next batch, if frames are waiting.
func (c *conn) sent() {
	b := c.b
	c.outMu.Lock()
	if w := c.writing; w != nil {
		c.writing, c.wlen = nil, 0
		if cap(*w) <= 64<<10 {
			b.writePl.Put(w)
		}
	}
	c.queued = 0
	if c.buf != nil {
		c.queued = len(*c.buf) - 1
	}
	batch := c.take()
	if batch == nil && c.closeCode != 0 && c.nframes == 0 {
		code, reason := c.closeCode, c.closeReason
		c.closeCode = 0
		c.killLocked(code, reason)
		return
	}
	wake := c.drain && c.queued < b.cfg.outbound/2
	if wake {
		c.drain = false
	}
	c.outMu.Unlock()
	if batch != nil {
		c.w.Write(batch)
	}
	if wake {
		if s := c.sess.Load(); s != nil {
			s.mu.Lock()
			s.wantCatchup()
			s.mu.Unlock()
		}
	}
}

// onError sees every error melody meets. It may run under melody's hub
// lock (from Close), so it never calls back into melody.
func (b *Bridge) onError(ms *melody.Session, err error) {
	c := b.connOf(ms)
	if c == nil {
		return
	}
	var ne net.Error
	switch {
	case errors.Is(err, melody.ErrMessageBufferFull):
		// melody would drop the frame silently: close the connection
		// instead; the session resumes without loss.
		b.stats.slow.Add(1)
		c.killSlow("melody's buffer is full")
	case errors.As(err, &ne) && ne.Timeout() && c.isWriting():
		// gorilla hides whether it was the read or the write that timed
		// out; a batch in flight that did not go out is a slow client.
		b.stats.slow.Add(1)
		c.killSlow("write timed out")
	}
}

// onBinary refuses binary messages.
func (b *Bridge) onBinary(ms *melody.Session, _ []byte) {
	if c := b.connOf(ms); c != nil {
		c.fail("", wire.CodeBadJSON, "binary messages are not part of the protocol")
	}
}
