package bridge

import (
	"slices"
	"time"

	"github.com/courierbus/courier/bridge/internal/wire"
)

// clockLoop advances the bridge's coarse clock every few milliseconds and
// closes the connections whose hello is late.
func (b *Bridge) clockLoop() {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		b.clock.Store(int64(time.Since(b.clock0)))
		b.helloTimeouts()
	}
}

// helloWait is a connection that has until deadline, on the bridge's
// clock, to say hello.
type helloWait struct {
	c        *conn
	deadline int64
}

// awaitHello starts c's handshake timeout. One queue for every connection,
// rather than a timer each: deadlines come in the order connections do.
func (b *Bridge) awaitHello(c *conn) {
	b.helloMu.Lock()
	b.hellos = append(b.hellos, helloWait{c, b.now() + int64(b.cfg.handshakeTimeout)})
	b.helloMu.Unlock()
}

// helloTimeouts closes the connections whose handshake timeout passed
// without a hello.
func (b *Bridge) helloTimeouts() {
	now := b.now()
	b.helloMu.Lock()
	n := 0
	for n < len(b.hellos) && b.hellos[n].deadline <= now {
		n++
	}
	if n == 0 {
		b.helloMu.Unlock()
		return
	}
	late := slices.Clone(b.hellos[:n])
	clear(b.hellos[:n])
	b.hellos = b.hellos[n:]
	if len(b.hellos) == 0 {
		b.hellos = nil
	}
	b.helloMu.Unlock()
	for _, h := range late {
		if h.c.sess.Load() == nil {
			h.c.kill(wire.CloseHelloTimeout, "hello timeout")
		}
	}
}
