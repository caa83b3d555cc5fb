package bus

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"time"
)

// owned counts the goroutines the bus started, so that Close can wait for
// them — all of them, or all but those that called Close from a handler.
type owned struct {
	mu   sync.Mutex
	cond sync.Cond
	n    int // goroutines running
	self int // of those, the ones waiting in a Close called from a handler
}

func (o *owned) Add(n int) {
	o.mu.Lock()
	o.n += n
	o.mu.Unlock()
}

func (o *owned) Done() {
	o.mu.Lock()
	o.n--
	o.cond.Broadcast()
	o.mu.Unlock()
}

// wait returns when the only goroutines left are those in a Close called
// from a handler; self tells whether the caller is one of them.
func (o *owned) wait(self bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if self {
		o.self++
		o.cond.Broadcast()
		defer func() { o.self-- }()
	}
	for o.n > o.self {
		o.cond.Wait()
	}
}

// inHandler reports whether the caller runs on one of the bus's
// goroutines: in a handler of a subscription or of an endpoint.
func inHandler() bool {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		if i := strings.LastIndex(f.Function, "/bus."); i >= 0 {
			switch f.Function[i+len("/bus."):] {
			case "(*Subscription).work", "(*Responder).run":
				return true
			}
		}
		if !more {
			return false
		}
	}
}

// Close stops the bus at once: queued and in-flight deliveries are
// abandoned (at-least-once messages stay in history and durable consumers
// keep their positions), blocked publishers return [ErrClosed], handlers'
// contexts end, and Close returns after every goroutine the bus started has
// ended — after their handlers have returned. Afterwards every operation
// returns ErrClosed. It returns the errors it met, such as a durable
// position the store failed to save; later calls, and calls after
// [Bus.Shutdown], return nil. It does not close a Store given with
// [WithStore].
//
// Close may be called from a handler of the bus (a subscription's or an
// endpoint's). It cannot wait for the goroutine it runs on: it returns once
// every other goroutine of the bus has ended, and the calling one ends when
// its handler returns.
func (b *Bus) Close() error {
	first := false
	b.closeOnce.Do(func() {
		first = true
		b.closing.Store(true)
		b.mu.Lock()
		subs := make([]*Subscription, 0, len(b.subs))
		for s := range b.subs {
			subs = append(subs, s)
		}
		b.mu.Unlock()
		// End the subscriptions before cancelling the bus's context: a
		// worker that sees its context end must also see that it is
		// stopped, or it would go on to the next message of its batch.
		for _, s := range subs {
			s.end(nil)
		}
		b.cancel()
		b.mu.Lock()
		eps := b.endpoints
		b.endpoints = map[string]*endpointSet{}
		b.mu.Unlock()
		for name, set := range eps {
			b.serveRemote(name, set) // the bus is closing: withdraws it
			for _, h := range set.list() {
				h.stop()
			}
		}
	})
	b.wg.wait(inHandler())
	b.clockTimer.Stop()
	if !first {
		return nil
	}
	if b.ownStore != nil {
		b.ownStore.Close()
	}
	b.errMu.Lock()
	defer b.errMu.Unlock()
	err := errors.Join(b.closeErrs...)
	b.closeErrs = nil
	return err
}

// closeErr records an error met while closing, for Close to return.
func (b *Bus) closeErr(err error) {
	b.errMu.Lock()
	b.closeErrs = append(b.closeErrs, err)
	b.errMu.Unlock()
}

// Shutdown closes the bus gracefully: it stops accepting publishes (they
// return [ErrClosed]), waits until every subscription has handled what it
// had queued, then closes the bus as [Bus.Close] does and returns what
// Close returns. If ctx ends first, Shutdown closes the bus at once, as
// Close does, and returns ctx.Err() (joined with any error Close met); a
// later Close returns nil without blocking on the drain. Shutdown may be
// called more than once and concurrently; once the bus is closed it
// returns nil.
//
// Called from a handler of the bus, Shutdown would wait for the delivery it
// is part of: it returns [ErrInHandler] at once and changes nothing. Call
// Close there, or Shutdown from another goroutine.
func (b *Bus) Shutdown(ctx context.Context) error {
	if inHandler() {
		return ErrInHandler
	}
	b.closing.Store(true)
	// Publishes that got past the closing check before it was set finish
	// queueing first: those to in-memory topics hold their topic's lock
	// until they have, those to persisted ones are counted.
	b.mu.RLock()
	topics := make([]*topicState, 0, len(b.topics))
	for _, ts := range b.topics {
		topics = append(topics, ts)
	}
	b.mu.RUnlock()
	for _, ts := range topics {
		ts.pubMu.Lock()
		ts.pubMu.Unlock() // only a barrier: the holder has queued its message
	}
	t := time.NewTicker(b.cfg.shutdownTick)
	defer t.Stop()
	for b.appending.Load() > 0 || !b.idle() {
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), b.Close())
		case <-b.ctx.Done():
			return b.Close()
		case <-t.C:
		}
	}
	return b.Close()
}

// idle reports whether no subscription has queued or in-flight messages.
func (b *Bus) idle() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for s := range b.subs {
		if s.busy() {
			return false
		}
	}
	return true
}
