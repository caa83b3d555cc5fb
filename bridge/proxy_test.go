package bridge_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// proxy is a TCP proxy on 127.0.0.1 in front of a server, which can cut
// every connection through it at once.
type proxy struct {
	t     testing.TB
	ln    net.Listener
	to    string
	wg    sync.WaitGroup
	mu    sync.Mutex
	pairs map[net.Conn]net.Conn
	cuts  int
}

func newProxy(t testing.TB, to string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, to: to, pairs: make(map[net.Conn]net.Conn)}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// url returns the WebSocket URL of path through the proxy.
func (p *proxy) url(wsURL string) string {
	i := strings.Index(wsURL[len("ws://"):], "/") + len("ws://")
	return "ws://" + p.ln.Addr().String() + wsURL[i:]
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.to)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.pairs[in] = out
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.pairs, src)
	delete(p.pairs, dst)
	p.mu.Unlock()
}

// cut closes every connection through the proxy; it returns how many.
func (p *proxy) cut() int {
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

func (p *proxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// newProxyAt is newProxy listening on a given address (to bring a proxy
// back at the address clients know).
func newProxyAt(t testing.TB, addr, to string) *proxy {
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
	p := &proxy{t: t, ln: ln, to: to, pairs: make(map[net.Conn]net.Conn)}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}
