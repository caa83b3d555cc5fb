package bus

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// dctx is a worker's handler context, reused from one delivery to the next
// so that a delivery costs no allocation, no lock, no timer operation and no
// clock reading: it carries the subscription's values, ends when the
// subscription ends, and has the AckWait deadline of the current delivery.
//
// One timer per worker is armed lazily for AckWait. When it fires and a
// delivery began after it was armed, it is re-armed for another AckWait;
// when the same delivery is still running, that delivery is late. A
// delivery's end is not recorded (it would cost a fenced store per
// message): a timer that fires after the last delivery of a busy spell
// marks the idle context failed, and the next delivery starts afresh.
// A handler that never looks at its deadline therefore times out between
// AckWait and twice AckWait after it began. A handler that asks for the
// deadline (Deadline, Done or Err) fixes it at AckWait from that moment,
// and the timer keeps to it. A handler must not use the context after it
// returns.
type dctx struct {
	context.Context // the subscription's context
	b               *Bus
	wait            time.Duration

	local    uint64        // the current delivery's number, the worker's copy
	gen      atomic.Uint64 // the current delivery's number
	armed    atomic.Bool   // the timer is pending
	failed   atomic.Bool   // err is set
	start    atomic.Int64  // bus time from which startGen's deadline runs
	startGen atomic.Uint64 // the delivery whose start is recorded

	mu     sync.Mutex
	armGen uint64 // the delivery running when the timer was armed
	done   chan struct{}
	err    error
	timer  *time.Timer
	stop   func() bool
}

func newDctx(b *Bus, parent context.Context, wait time.Duration) *dctx {
	c := &dctx{Context: parent, b: b, wait: wait}
	c.timer = time.AfterFunc(time.Hour, c.expire)
	c.timer.Stop()
	c.stop = context.AfterFunc(parent, func() { c.fail(parent.Err()) })
	return c
}

// begin starts a delivery.
func (c *dctx) begin() {
	if c.failed.Load() {
		c.mu.Lock()
		if c.Context.Err() == nil {
			c.err, c.done = nil, nil // the last delivery timed out: start afresh
			c.failed.Store(false)
		}
		c.mu.Unlock()
	}
	c.local++
	g := c.local
	c.gen.Store(g)
	if !c.armed.Load() {
		c.mu.Lock()
		if !c.armed.Load() {
			c.armed.Store(true)
			c.armGen = g
			c.timer.Reset(c.wait)
		}
		c.mu.Unlock()
	}
}

// close releases the context for good.
func (c *dctx) close() {
	c.timer.Stop()
	c.stop()
}

func (c *dctx) expire() {
	c.mu.Lock()
	c.armed.Store(false)
	g := c.gen.Load()
	var next time.Duration
	switch {
	case c.startGen.Load() == g:
		next = time.Duration(c.start.Load() + int64(c.wait) - c.b.now())
	case g != c.armGen:
		next = c.wait // began within the last interval: give it a full one
	}
	if next > 0 {
		c.armed.Store(true)
		c.armGen = g
		c.timer.Reset(next)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.fail(context.DeadlineExceeded)
}

func (c *dctx) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	c.failed.Store(true)
	if c.done != nil {
		close(c.done)
	}
}

// late reports whether the current delivery ran past its deadline: the
// timer found it still running a full AckWait after it was armed, or after
// the deadline its handler asked for.
func (c *dctx) late() bool {
	if !c.failed.Load() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == context.DeadlineExceeded
}

// fix records the current delivery's start, the first time its handler
// looks at the deadline.
func (c *dctx) fix() int64 {
	g := c.gen.Load()
	if c.startGen.Load() != g {
		c.start.Store(c.b.now())
		c.startGen.Store(g)
	}
	return c.start.Load()
}

func (c *dctx) Deadline() (time.Time, bool) {
	return c.b.wall(c.fix() + int64(c.wait)), true
}

func (c *dctx) Done() <-chan struct{} {
	c.fix()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		}
	}
	return c.done
}

func (c *dctx) Err() error {
	c.fix()
	if !c.failed.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
