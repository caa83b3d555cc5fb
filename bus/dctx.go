package bus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// delivery is one delivery attempt of a message to a handler: the handler's
// context and, under ManualAck, the message's settlement.
//
// Each delivery has its own, so a handler may keep its context, pass it on
// and select on it after it returned: it ends when the handler returns
// (Err is context.Canceled), when its deadline, AckWait from the start of
// the delivery, passes (context.DeadlineExceeded), or when the
// subscription ends. Deliveries come from a slab per worker, so that the
// common path costs no allocation of its own (one per deliverySlab
// deliveries), no lock, no channel and no timer operation: one timer per
// worker, armed when a delivery begins while it is idle, serves every
// deadline. When it fires it ends the current delivery if that is past its
// deadline, or is re-armed for what is left of it; it stays idle when the
// worker is. A context or a Message kept after the handler returned keeps
// its slab (a few KiB) alive.
type delivery struct {
	w     *dworker
	start int64         // bus time the delivery began (see Bus.now)
	state atomic.Uint32 // dRunning, then how it ended

	hasDone atomic.Bool // done was made: whoever ends the delivery closes it
	mu      sync.Mutex  // guards done and closed
	done    chan struct{}
	closed  bool

	// ManualAck: settled once, by the first of Ack, Nack, Term, a failed
	// attempt or the AckWait timeout.
	claim   atomic.Bool   // the settlement is taken
	kind    atomic.Uint32 // its outcomeKind, stored once delay is written
	delay   time.Duration
	touched atomic.Int64 // bus time of the last InProgress, 0 if none
}

const (
	dRunning   uint32 = iota
	dReturned         // the handler returned
	dExpired          // the deadline passed first
	dCancelled        // the subscription ended first
)

// deliverySlab bounds how many deliveries one allocation makes; the first
// slabs of a worker are smaller, so an idle subscription costs little.
const deliverySlab = 256

// dworker is what the deliveries of one worker share.
type dworker struct {
	b      *Bus
	parent context.Context // the subscription's context
	wait   time.Duration

	slab  []delivery
	slabN int

	cur       atomic.Pointer[delivery] // the latest delivery
	cancelled atomic.Bool              // parent ended
	stop      func() bool

	mu    sync.Mutex  // serializes arming timer
	armed atomic.Bool // timer is pending: read without mu on the hot path
	timer *time.Timer

	// ManualAck: a settlement made after the handler returned wakes the
	// worker; the ack timer bounds its wait.
	wake     chan struct{}
	ackTimer *time.Timer
}

func newDworker(b *Bus, parent context.Context, wait time.Duration, manual bool) *dworker {
	w := &dworker{b: b, parent: parent, wait: wait}
	w.timer = time.AfterFunc(time.Hour, w.expire)
	w.timer.Stop()
	w.stop = context.AfterFunc(parent, func() {
		w.cancelled.Store(true)
		if d := w.cur.Load(); d != nil {
			d.end(dCancelled)
		}
	})
	if manual {
		w.wake = make(chan struct{}, 1)
	}
	return w
}

// close releases the worker's timers for good.
func (w *dworker) close() {
	w.stop()
	w.timer.Stop()
	if w.ackTimer != nil {
		w.ackTimer.Stop()
	}
}

// begin starts a delivery and returns it.
func (w *dworker) begin() *delivery {
	if len(w.slab) == 0 {
		w.slabN = min(max(2*w.slabN, 8), deliverySlab)
		w.slab = make([]delivery, w.slabN)
	}
	d := &w.slab[0]
	w.slab = w.slab[1:]
	d.w = w
	d.start = w.b.now()
	w.cur.Store(d)
	if w.cancelled.Load() {
		d.end(dCancelled)
	}
	if !w.armed.Load() {
		w.mu.Lock()
		if !w.armed.Load() {
			w.armed.Store(true)
			w.timer.Reset(w.wait)
		}
		w.mu.Unlock()
	}
	return d
}

// expire is the worker's deadline timer.
func (w *dworker) expire() {
	w.mu.Lock()
	w.armed.Store(false)
	d := w.cur.Load()
	if d == nil || d.state.Load() != dRunning {
		w.mu.Unlock()
		return // idle: the next delivery arms the timer again
	}
	if left := time.Duration(d.start + int64(w.wait) - int64(time.Since(w.b.base))); left > 0 {
		w.armed.Store(true)
		w.timer.Reset(left)
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	d.end(dExpired)
}

// finish ends the delivery as its handler returns and reports whether the
// deadline had passed first.
func (d *delivery) finish() (late bool) {
	if d.end(dReturned) {
		return false
	}
	return d.state.Load() == dExpired
}

// end ends the delivery with state st unless it has ended already.
func (d *delivery) end(st uint32) bool {
	if !d.state.CompareAndSwap(dRunning, st) {
		return false
	}
	if d.hasDone.Load() {
		d.mu.Lock()
		if !d.closed {
			d.closed = true
			close(d.done)
		}
		d.mu.Unlock()
	}
	return true
}

// Deadline is AckWait from the start of the delivery.
func (d *delivery) Deadline() (time.Time, bool) {
	return d.w.b.wall(d.start + int64(d.w.wait)), true
}

func (d *delivery) Done() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done == nil {
		d.done = make(chan struct{})
		d.hasDone.Store(true)
		if d.state.Load() != dRunning {
			d.closed = true
			close(d.done)
		}
	}
	return d.done
}

func (d *delivery) Err() error {
	switch d.state.Load() {
	case dRunning:
		return nil
	case dExpired:
		return context.DeadlineExceeded
	case dCancelled:
		if err := d.w.parent.Err(); err != nil {
			return err
		}
	}
	return context.Canceled
}

func (d *delivery) Value(key any) any { return d.w.parent.Value(key) }

func (d *delivery) String() string { return "bus.deliveryContext" }

// settle records the outcome of a ManualAck delivery; the first one counts.
func (d *delivery) settle(o outcome) error {
	if d == nil {
		return ErrNotManual
	}
	if !d.claim.CompareAndSwap(false, true) {
		return ErrAlreadyAcked
	}
	d.delay = o.delay
	d.kind.Store(uint32(o.kind))
	select {
	case d.w.wake <- struct{}{}:
	default:
	}
	return nil
}

// touch restarts the AckWait clock of a ManualAck delivery.
func (d *delivery) touch() error {
	if d == nil {
		return ErrNotManual
	}
	d.touched.Store(d.w.b.now())
	return nil
}

// awaitSettle waits for a ManualAck delivery whose handler returned nil to
// be settled: within AckWait of its start or of its last InProgress.
func (w *dworker) awaitSettle(d *delivery) outcome {
	for {
		if k := d.kind.Load(); k != 0 {
			return outcome{kind: outcomeKind(k), delay: d.delay}
		}
		left := time.Duration(max(d.start, d.touched.Load()) + int64(w.wait) - int64(time.Since(w.b.base)))
		if left <= 0 {
			if d.settle(outcome{}) == nil {
				return outcome{kind: outFail, err: fmt.Errorf("bus: not acknowledged within %v", w.wait)}
			}
			continue // settled meanwhile
		}
		if w.ackTimer == nil {
			w.ackTimer = time.NewTimer(left)
		} else {
			w.ackTimer.Reset(left)
		}
		select {
		case <-w.wake: // maybe an earlier delivery's: the loop checks
		case <-w.ackTimer.C:
		case <-w.parent.Done():
			d.settle(outcome{})
			return outcome{kind: outFail, err: w.parent.Err()}
		}
	}
}
