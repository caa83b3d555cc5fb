// Package tcpproxy is a TCP proxy on 127.0.0.1 for Courier's tests: it
// stands between clients and a server and can cut every connection through
// it at once, as a network failure does, or block it (cut, and refuse new
// connections until unblocked), as a network partition does.
package tcpproxy

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proxy forwards the connections it accepts to one server. Its methods are
// safe for concurrent use.
type Proxy struct {
	ln net.Listener
	to string
	wg sync.WaitGroup

	mu    sync.Mutex
	pairs map[net.Conn]net.Conn
	cuts  int
	limit func() int64 // bytes a new connection may carry to its client
	cutAt int          // connections cut by their limit
	block bool         // refuse connections
}

// New starts a proxy to the server at address to, on a free port of
// 127.0.0.1. It is closed when the test ends.
func New(t testing.TB, to string) *Proxy { return NewAt(t, "127.0.0.1:0", to) }

// NewAt is New listening on addr, which it retries for up to a second:
// it brings a proxy back at the address clients know.
func NewAt(t testing.TB, addr, to string) *Proxy {
	t.Helper()
	var ln net.Listener
	var err error
	for range 100 {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, to: to, pairs: make(map[net.Conn]net.Conn)}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns wsURL (ws://host/path) with its host replaced by the proxy's.
func (p *Proxy) URL(wsURL string) string {
	rest := wsURL[len("ws://"):]
	return "ws://" + p.Addr() + rest[strings.Index(rest, "/"):]
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		blocked := p.block
		p.mu.Unlock()
		if blocked {
			in.Close()
			continue
		}
		out, err := net.DialTimeout("tcp", p.to, 5*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		if p.block {
			// Blocked while dialing.
			p.mu.Unlock()
			in.Close()
			out.Close()
			continue
		}
		p.pairs[in] = out
		var n int64
		if p.limit != nil {
			n = p.limit()
		}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out, 0)
		go p.pipe(out, in, n)
	}
}

// pipe copies src to dst until either side ends or, when limit > 0, until
// limit bytes have gone through; then it closes both.
func (p *Proxy) pipe(dst, src net.Conn, limit int64) {
	defer p.wg.Done()
	if limit > 0 {
		if n, _ := io.CopyN(dst, src, limit); n == limit {
			p.mu.Lock()
			p.cutAt++
			p.mu.Unlock()
		}
	} else {
		io.Copy(dst, src)
	}
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.pairs, src)
	delete(p.pairs, dst)
	p.mu.Unlock()
}

// Cut closes every connection through the proxy and returns how many.
func (p *Proxy) Cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for in, out := range p.pairs {
		in.Close()
		out.Close()
		n++
	}
	if n > 0 {
		p.cuts++
	}
	return n
}

// Block cuts every connection through the proxy and refuses new ones
// until Unblock; it returns how many it cut.
func (p *Proxy) Block() int {
	p.mu.Lock()
	p.block = true
	p.mu.Unlock()
	return p.Cut()
}

// Unblock lets connections through again.
func (p *Proxy) Unblock() {
	p.mu.Lock()
	p.block = false
	p.mu.Unlock()
}

// Cuts returns how many Cut calls found connections to cut.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// CutAfter makes the proxy cut each connection it accepts from now on once
// it has forwarded n bytes from the server to the client, n being what f
// returns for that connection (0 or less: no limit). The cut falls wherever
// the byte count does: inside a handshake, a frame or a header. f is called
// with the proxy's lock held; nil removes the limit.
func (p *Proxy) CutAfter(f func() int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limit = f
}

// LimitCuts returns how many connections were cut by the CutAfter limit.
func (p *Proxy) LimitCuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cutAt
}

// StopAccepting closes the listener: connections through the proxy go on,
// new ones are refused.
func (p *Proxy) StopAccepting() { p.ln.Close() }

// Close stops accepting, cuts every connection and waits for the proxy's
// goroutines. It may be called more than once.
func (p *Proxy) Close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
