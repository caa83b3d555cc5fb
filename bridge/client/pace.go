package client

import (
	"sync"
	"time"

	"github.com/courierbus/courier/bridge/internal/wire"
)

// pacer keeps a connection's frames within the frame rate the server
// announced in its welcome: a token bucket like the server's, a little
// slower, so that the client waits rather than have frames refused as
// rate_limited (each refusal is a strike against the connection). Acks
// are not paced: the server does not count them.
type pacer struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

// newPacer returns a pacer for the server's limits, or nil when it
// announced none.
func newPacer(l *wire.Limits) *pacer {
	if l == nil || l.Rate <= 0 || l.Burst <= 0 {
		return nil
	}
	// Keep a margin: frames are counted when they arrive, a batch may
	// arrive closer together than it was paced, and the server's clock
	// moves in steps of a few milliseconds.
	rate, burst := l.Rate*0.8, max(float64(l.Burst)/2, 1)
	return &pacer{rate: rate, burst: burst, tokens: burst, last: time.Now()}
}

// wait takes a token, waiting for one; false when done closes first.
func (p *pacer) wait(done <-chan struct{}) bool {
	for {
		p.mu.Lock()
		now := time.Now()
		p.tokens = min(p.burst, p.tokens+now.Sub(p.last).Seconds()*p.rate)
		p.last = now
		if p.tokens >= 1 {
			p.tokens--
			p.mu.Unlock()
			return true
		}
		need := time.Duration((1 - p.tokens) / p.rate * float64(time.Second))
		p.mu.Unlock()
		t := time.NewTimer(need)
		select {
		case <-t.C:
		case <-done:
			t.Stop()
			return false
		}
	}
}
