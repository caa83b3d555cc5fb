package bus

import (
	"context"
	"sync"
	"time"
)

// dctx is a worker's handler context, reused from one delivery to the next
// so that a delivery costs no allocation and no timer operation: it carries
// the subscription's values, ends when the subscription ends, and has the
// AckWait deadline of the current delivery. One timer per worker is armed
// lazily and, when it fires early for a later delivery, re-armed for the
// rest of that delivery's time. A handler must not use it after returning.
type dctx struct {
	context.Context // the subscription's context
	wait            time.Duration

	mu       sync.Mutex
	done     chan struct{}
	err      error
	deadline time.Time
	active   bool // a delivery is running
	armed    bool // the timer is pending
	timer    *time.Timer
	stop     func() bool
}

func newDctx(parent context.Context, wait time.Duration) *dctx {
	c := &dctx{Context: parent, wait: wait}
	c.timer = time.AfterFunc(time.Hour, c.expire)
	c.timer.Stop()
	c.stop = context.AfterFunc(parent, func() { c.fail(parent.Err()) })
	return c
}

// begin starts a delivery with the AckWait deadline from now.
func (c *dctx) begin() {
	now := time.Now()
	c.mu.Lock()
	if c.err != nil && c.Context.Err() == nil {
		c.err, c.done = nil, nil // the last delivery timed out: start afresh
	}
	c.deadline = now.Add(c.wait)
	c.active = true
	if !c.armed {
		c.armed = true
		c.timer.Reset(c.wait)
	}
	c.mu.Unlock()
}

// end marks the delivery over; the timer, if pending, is left to lapse.
func (c *dctx) end() {
	c.mu.Lock()
	c.active = false
	c.mu.Unlock()
}

// close releases the context for good.
func (c *dctx) close() {
	c.timer.Stop()
	c.stop()
}

func (c *dctx) expire() {
	c.mu.Lock()
	c.armed = false
	if !c.active {
		c.mu.Unlock()
		return
	}
	if left := time.Until(c.deadline); left > 0 {
		c.armed = true
		c.timer.Reset(left)
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
	if c.done != nil {
		close(c.done)
	}
}

func (c *dctx) Deadline() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadline, true
}

func (c *dctx) Done() <-chan struct{} {
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
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
