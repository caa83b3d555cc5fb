package bus

import (
	"context"
	"fmt"
	"time"
)

// work is one of the subscription's MaxInFlight goroutines.
func (s *Subscription) work() {
	fast := s.cfg.volatile && !s.cfg.manual // no deadline, no retry
	var c *dworker
	if !fast {
		c = newDworker(s.b, s.ctx, s.cfg.ackWait, s.cfg.manual)
	}
	defer func() {
		if c != nil {
			c.close()
		}
		if s.workers.Add(-1) == 0 {
			s.detach()
		}
	}()
	batch := make([]*entry, 0, maxBatch)
	for {
		batch = s.next(batch[:0])
		if batch == nil {
			return
		}
		n := s.deliverBatch(c, batch, fast)
		s.stats.delivered.Add(uint64(n))
		clear(batch)
	}
}

// deliverBatch hands the batch to the handler in order and returns how
// many it delivered; it stops early when the subscription ends.
func (s *Subscription) deliverBatch(c *dworker, batch []*entry, fast bool) int {
	n := 0
	switch {
	case fast:
		for n < len(batch) && !s.stopped.Load() {
			n = s.runFast(batch, n)
		}
	case !s.cfg.manual:
		for n < len(batch) && !s.stopped.Load() {
			n = s.runSync(c, batch, n)
		}
	default:
		for ; n < len(batch) && !s.stopped.Load(); n++ {
			s.process(c, batch[n])
		}
	}
	for i := 0; i < n; {
		j := i + 1
		for j < n && batch[j].topic == batch[i].topic {
			j++
		}
		batch[i].topic.stats.delivered.Add(uint64(j - i))
		i = j
	}
	s.inFlight.Add(-int32(len(batch)))
	return n
}

// runFast calls the handler for batch[i:] until the end, a panic or the
// subscription's end, and returns the index after the last message
// handled. One deferred recover serves the whole batch.
func (s *Subscription) runFast(batch []*entry, i int) (next int) {
	defer func() {
		if v := recover(); v != nil {
			s.logPanic(batch[next], v)
			next++
		}
	}()
	for next = i; next < len(batch); next++ {
		if s.stopped.Load() {
			return next
		}
		s.deliver(s.ctx, batch[next], 1, nil)
	}
	return next
}

// runSync is runFast for at-least-once handlers that acknowledge by
// returning: a first attempt that succeeds costs one handler call and no
// more; a failure or a panic goes on to the retries of process.
func (s *Subscription) runSync(c *dworker, batch []*entry, i int) (next int) {
	var d *delivery
	defer func() {
		if v := recover(); v != nil {
			if d != nil {
				d.finish() // the handler's context ends as it would on a return
			}
			e := batch[next]
			s.logPanic(e, v)
			next++
			s.retry(c, e, 1, outcome{kind: outFail, err: &HandlerError{Value: v}})
		}
	}()
	for next = i; next < len(batch); next++ {
		if s.stopped.Load() {
			return next
		}
		e := batch[next]
		if s.durable != nil {
			s.process(c, e) // keeps the consumer's position
			continue
		}
		d = c.begin()
		err := s.deliver(d, e, 1, nil)
		if d.finish() && err == nil {
			err = s.lateErr()
		}
		if err != nil {
			s.retry(c, e, 1, outcome{kind: outFail, err: err})
		}
	}
	return next
}

func (s *Subscription) logPanic(e *entry, v any) {
	s.b.log.Error("bus: handler panicked", "pattern", s.pattern, "topic", e.topic.name, "seq", e.seq, "panic", v)
}

// process delivers e until it is settled.
func (s *Subscription) process(c *dworker, e *entry) {
	first := 1
	if s.durable != nil && !s.markDelivered(e.seq) {
		first = 2 // handed out before a restart or resubscribe
	}
	s.attempts(c, e, first)
}

// attempts delivers e from attempt n on until it is settled.
func (s *Subscription) attempts(c *dworker, e *entry, n int) {
	for attempt := n; ; attempt++ {
		o := s.invoke(c, e, attempt)
		if attempt > 1 {
			s.stats.redelivered.Add(1)
			e.topic.stats.redelivered.Add(1)
		}
		if !s.again(e, attempt, o) {
			return
		}
	}
}

// retry goes on after attempt n of e ended with o.
func (s *Subscription) retry(c *dworker, e *entry, n int, o outcome) {
	if s.again(e, n, o) {
		s.attempts(c, e, n+1)
	}
}

// again settles e after attempt n ended with o, or waits the backoff and
// reports that it should be tried again.
func (s *Subscription) again(e *entry, n int, o outcome) bool {
	switch {
	case o.kind == outAck || o.kind == outTerm:
		s.settled(e)
		return false
	case s.cfg.volatile || e.seq == 0 || s.ctx.Err() != nil:
		// No retry for volatile delivery; when ending, what is not settled
		// stays unacknowledged for a durable consumer to get again.
		return false
	case n >= s.cfg.maxDeliver:
		s.deadLetter(e, n, o.err)
		s.settled(e)
		return false
	}
	delay := o.delay
	if delay <= 0 {
		delay = s.cfg.backoff(n)
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// invoke calls the handler once and waits for the outcome.
func (s *Subscription) invoke(c *dworker, e *entry, attempt int) (o outcome) {
	d := c.begin()
	var md *delivery // the Message's settlement: ManualAck only
	if s.cfg.manual {
		md = d
	}
	err := s.call(d, e, attempt, md)
	late := d.finish()
	if err == nil && md == nil && late {
		err = s.lateErr()
	}
	if err != nil {
		if md != nil {
			md.settle(outcome{kind: outFail})
		}
		return outcome{kind: outFail, err: err}
	}
	if md == nil {
		return outcome{kind: outAck}
	}
	return c.awaitSettle(md)
}

// lateErr is the outcome of a handler that returned nil after its
// AckWait: the delivery counts as failed.
func (s *Subscription) lateErr() error {
	return fmt.Errorf("bus: handler returned after its AckWait of %v: %w", s.cfg.ackWait, context.DeadlineExceeded)
}

// call runs the handler, turning a panic into an error.
func (s *Subscription) call(ctx context.Context, e *entry, attempt int, d *delivery) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &HandlerError{Value: v}
			s.logPanic(e, v)
		}
	}()
	return s.deliver(ctx, e, attempt, d)
}
