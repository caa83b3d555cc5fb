package bus

import (
	"context"
	"sync"
	"time"
)

// dctx is a worker's handler context, reused from one delivery to the next
// so that a delivery costs no allocation: it carries the subscription's
// values, ends when the subscription ends, and has the AckWait deadline of
// the current delivery. A handler must not use it after returning.
type dctx struct {
	context.Context // the subscription's context

	mu       sync.Mutex
	done     chan struct{}
	err      error
	deadline time.Time
	timer    *time.Timer
	stop     func() bool
}

func newDctx(parent context.Context) *dctx {
	c := &dctx{Context: parent}
	c.timer = time.AfterFunc(time.Hour, c.expire)
	c.timer.Stop()
	c.stop = context.AfterFunc(parent, func() { c.fail(parent.Err()) })
	return c
}

// begin starts a delivery with deadline d from now.
func (c *dctx) begin(d time.Duration) {
	c.mu.Lock()
	if c.err != nil {
		if perr := c.Context.Err(); perr != nil {
			c.mu.Unlock()
			return
		}
		c.err, c.done = nil, nil
	}
	c.deadline = time.Now().Add(d)
	c.timer.Reset(d)
	c.mu.Unlock()
}

// end releases the timer at the end of a delivery.
func (c *dctx) end() { c.timer.Stop() }

// close releases the context for good.
func (c *dctx) close() {
	c.timer.Stop()
	c.stop()
}

func (c *dctx) expire() {
	c.mu.Lock()
	late := !time.Now().Before(c.deadline)
	c.mu.Unlock()
	if late {
		c.fail(context.DeadlineExceeded)
	}
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
