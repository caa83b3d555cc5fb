package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// WSEvent is what every WebSocket broadcast carries: its index, the
// server's wall clock when it was published (Unix ns; clients on the same
// machine subtract it from their own) and some text, about 100 bytes as
// JSON. Servers encode it with encoding/json; the field order makes
// "bk" and "bt" the first members, which clients find without decoding.
type WSEvent struct {
	K    int64  `json:"bk"`
	T    int64  `json:"bt"`
	Text string `json:"text"`
}

// WSText is the text of every broadcast event.
const WSText = "the quick brown fox jumps over the lazy dog, twice"

// Server-side names shared by the implementations.
const (
	WSPath        = "/ws/"  // where the WebSocket is mounted
	BroadcastName = "bcast" // the topic or channel every client subscribes to
	RoundTripName = "rt"    // the topic or channel round trips publish to
)

// WSServer is one WebSocket server under test. It runs in a child process
// (see ChildMain), mounted at WSPath on a mux that also serves the
// controller's /ctl/ requests.
type WSServer struct {
	Name string
	// Start mounts the server on mux and returns it running.
	Start func(mux *http.ServeMux) (WSRuntime, error)
}

// WSRuntime is a running WebSocket server.
type WSRuntime interface {
	// Broadcast sends ev to every client, encoded as the library's users
	// would.
	Broadcast(ev WSEvent) error
	Close() error
}

// WSImpl is an implementation of the WebSocket scenarios: a server and
// the client the load generator uses with it.
type WSImpl struct {
	Name   string // as in the report
	Server string // the WSServer's name
	Note   string
	// Dial connects one client to the server at addr (host:port),
	// subscribed to the broadcast, and calls got with each message's
	// bytes (one or more events). It returns once the subscription is in
	// place.
	Dial func(ctx context.Context, addr string, got func(data []byte)) (io.Closer, error)
	// RoundTripper connects one client for the round trip scenario, or is
	// nil when the implementation has none.
	RoundTripper func(ctx context.Context, addr string) (RoundTripper, error)
}

// RoundTripper does one acknowledged round trip at a time.
type RoundTripper interface {
	// RoundTrip sends one message and returns when the server's answer
	// (its ack, or an echo) has arrived.
	RoundTrip(ctx context.Context) error
	Close() error
}

// ForEachEvent calls f with the index and send time of each event in a
// message (a frame or a batch of frames, in any framing that embeds the
// event's JSON).
func ForEachEvent(data []byte, f func(k, sentNs int64)) {
	for {
		i := bytes.Index(data, []byte(`"bk":`))
		if i < 0 {
			return
		}
		data = data[i+5:]
		k, n := parseInt(data)
		data = data[n:]
		if !bytes.HasPrefix(data, []byte(`,"bt":`)) {
			continue
		}
		data = data[6:]
		t, n := parseInt(data)
		data = data[n:]
		f(k, t)
	}
}

func parseInt(b []byte) (v int64, n int) {
	neg := n < len(b) && b[0] == '-'
	if neg {
		n++
	}
	for ; n < len(b) && b[n] >= '0' && b[n] <= '9'; n++ {
		v = v*10 + int64(b[n]-'0')
	}
	if neg {
		v = -v
	}
	return v, n
}

// WSOptions size one WebSocket run.
type WSOptions struct {
	Clients        int           // connections
	Batch          int           // broadcasts per controller request in the throughput phase
	Messages       int           // at most this many broadcasts in the throughput phase
	ThroughputTime time.Duration // and for at most this long
	LatencySamples int           // isolated broadcasts timed one by one
	LatencyTime    time.Duration // for at most this long
	Progress       func(string)  // optional
}

// Metrics of the WebSocket scenarios.
const (
	ServerCPUPerMsg = "server-cpu-ns/msg" // server process CPU time per delivered message
	WritesPerMsg    = "server-writes/msg" // server write system calls per delivered message
	P50Ms           = "p50-ms"            // median time for one broadcast to reach every client
	P99Ms           = "p99-ms"            // 99th percentile of the same
	RSSPerConn      = "rss-per-conn"      // server RSS growth per idle connection, bytes
	ConnectSec      = "connect-s"         // time to connect and subscribe every client
	RTPerSec        = "rt/s"              // sequential round trips per second
	P50Us           = "p50-us"            // median round trip
	P99Us           = "p99-us"            // 99th percentile round trip
	ServerCPUPerRT  = "server-cpu-ns/rt"  // server process CPU time per round trip
)

// tracker counts deliveries in the load generator and keeps, per timed
// broadcast, the latest arrival.
type tracker struct {
	delivered atomic.Int64
	target    atomic.Int64
	sig       chan struct{}
	lat       []atomic.Int64 // per timed broadcast k: max arrival - send, ns
}

func newTracker(samples int) *tracker {
	t := &tracker{sig: make(chan struct{}, 1), lat: make([]atomic.Int64, samples)}
	t.target.Store(-1)
	return t
}

func (t *tracker) got(data []byte) {
	ForEachEvent(data, func(k, sent int64) {
		if k >= 0 && k < int64(len(t.lat)) {
			d := time.Now().UnixNano() - sent
			for {
				old := t.lat[k].Load()
				if d <= old || t.lat[k].CompareAndSwap(old, d) {
					break
				}
			}
		}
		if t.delivered.Add(1) == t.target.Load() {
			select {
			case t.sig <- struct{}{}:
			default:
			}
		}
	})
}

// wait waits until want deliveries were counted, or timeout.
func (t *tracker) wait(want int64, timeout time.Duration) error {
	t.target.Store(want)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for t.delivered.Load() < want {
		select {
		case <-t.sig:
		case <-deadline.C:
			return fmt.Errorf("bench: %d of %d deliveries arrived within %v", t.delivered.Load(), want, timeout)
		}
	}
	return nil
}

// child is a server process started by the controller.
type child struct {
	cmd  *exec.Cmd
	addr string
	ctl  *http.Client
	errb bytes.Buffer
}

// startChild re-executes this binary as role (see ChildMain) and reads
// the address it listens on.
func startChild(role string, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &child{ctl: &http.Client{Timeout: 30 * time.Second}}
	c.cmd = exec.Command(exe, args...)
	c.cmd.Env = append(os.Environ(), childEnv+"="+role)
	c.cmd.Stderr = &c.errb
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		io.Copy(io.Discard, out)
	}()
	select {
	case l, ok := <-line:
		if addr, found := strings.CutPrefix(l, "listening "); ok && found {
			c.addr = addr
			return c, nil
		}
	case <-time.After(30 * time.Second):
	}
	c.kill()
	return nil, fmt.Errorf("bench: child %s did not start: %s", role, c.errb.String())
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// get sends a control request and returns its body.
func (c *child) get(path string) (string, error) {
	resp, err := c.ctl.Get("http://" + c.addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("bench: %s: %s %s", path, resp.Status, b)
	}
	return strings.TrimSpace(string(b)), err
}

// kill ends the child: politely, then not.
func (c *child) kill() {
	if c.addr != "" {
		c.ctl.Timeout = 2 * time.Second
		c.get("/ctl/quit")
	}
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

func (c *child) rss() (int64, error) {
	s, err := c.get("/ctl/rss")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

// broadcast asks the server to publish n events, indices from k.
func (c *child) broadcast(n int, k int64) error {
	_, err := c.get(fmt.Sprintf("/ctl/broadcast?n=%d&k=%d", n, k))
	return err
}

// dialAll connects n clients with a few dials at a time.
func dialAll(ctx context.Context, impl WSImpl, addr string, n int, got func([]byte)) ([]io.Closer, error) {
	clients := make([]io.Closer, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				c, err := impl.Dial(ctx, addr, got)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("bench: client %d of %d: %w", i, n, err)
					}
					mu.Unlock()
					return
				}
				clients[i] = c
			}
		})
	}
	wg.Wait()
	if first != nil {
		closeAll(clients)
		return nil, first
	}
	return clients, nil
}

// closeAll closes clients, several at a time.
func closeAll(clients []io.Closer) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(clients); i = int(next.Add(1)) - 1 {
				if clients[i] != nil {
					clients[i].Close()
				}
			}
		})
	}
	wg.Wait()
}

// throughputBase is where the throughput phase's event indices start, far
// above the timed ones.
const throughputBase = 1 << 40

// RunWS measures one run of the broadcast scenario: a fresh server
// process, opt.Clients clients connected and subscribed, the server's RSS
// before and after (per idle connection), the delivered msgs/s with the
// server's CPU time per delivered message while broadcasting in batches
// (two batches in flight at most, so that no library's queue overflows),
// then broadcasts one at a time, each timed until its last arrival.
func RunWS(impl WSImpl, opt WSOptions) (Metrics, error) {
	progress := opt.Progress
	if progress == nil {
		progress = func(string) {}
	}
	srv, err := startChild("ws:" + impl.Server)
	if err != nil {
		return nil, err
	}
	defer srv.kill()
	rss0, err := srv.rss()
	if err != nil {
		return nil, err
	}
	tr := newTracker(opt.LatencySamples)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	clients, err := dialAll(ctx, impl, srv.addr, opt.Clients, tr.got)
	if err != nil {
		return nil, fmt.Errorf("%w (server: %s)", err, srv.errb.String())
	}
	defer closeAll(clients)
	connect := time.Since(t0)
	time.Sleep(300 * time.Millisecond) // let connection setup settle
	rss1, err := srv.rss()
	if err != nil {
		return nil, err
	}
	n := int64(opt.Clients)
	progress(fmt.Sprintf("%d clients in %.1fs", n, connect.Seconds()))

	// Warm up: one batch.
	k := int64(throughputBase)
	if err := srv.broadcast(opt.Batch, k); err != nil {
		return nil, err
	}
	k += int64(opt.Batch)
	if err := tr.wait(n*int64(opt.Batch), 30*time.Second); err != nil {
		return nil, err
	}

	// Throughput.
	base := tr.delivered.Load()
	cpu0, w0, start := ProcCPU(srv.pid()), ProcWrites(srv.pid()), time.Now()
	sent := 0
	for sent < opt.Messages && time.Since(start) < opt.ThroughputTime {
		if err := srv.broadcast(opt.Batch, k); err != nil {
			return nil, err
		}
		k += int64(opt.Batch)
		sent += opt.Batch
		if err := tr.wait(base+n*int64(sent-opt.Batch), 30*time.Second); err != nil {
			return nil, err
		}
	}
	if err := tr.wait(base+n*int64(sent), 30*time.Second); err != nil {
		return nil, err
	}
	wall, cpu, writes := time.Since(start), ProcCPU(srv.pid())-cpu0, ProcWrites(srv.pid())-w0
	deliveries := float64(n) * float64(sent)

	// Latency: one broadcast at a time.
	var lat []float64
	lstart := time.Now()
	for i := range opt.LatencySamples {
		if i > 0 && time.Since(lstart) > opt.LatencyTime {
			break
		}
		want := tr.delivered.Load() + n
		if err := srv.broadcast(1, int64(i)); err != nil {
			return nil, err
		}
		if err := tr.wait(want, 30*time.Second); err != nil {
			return nil, err
		}
		lat = append(lat, float64(tr.lat[i].Load())/1e6)
	}
	return Metrics{
		MsgsPerSec:      deliveries / wall.Seconds(),
		ServerCPUPerMsg: float64(cpu.Nanoseconds()) / deliveries,
		WritesPerMsg:    float64(writes) / deliveries,
		P50Ms:           Percentile(lat, 50),
		P99Ms:           Percentile(lat, 99),
		RSSPerConn:      float64(rss1-rss0) / float64(n),
		ConnectSec:      connect.Seconds(),
		Delivered:       deliveries,
	}, nil
}

// RTOptions size one round trip run.
type RTOptions struct {
	Trips int           // at most this many round trips
	Time  time.Duration // for at most this long
}

// RunRT measures sequential round trips of one client against a fresh
// server process: round trips per second, p50 and p99, and the server's
// CPU time per round trip.
func RunRT(impl WSImpl, opt RTOptions) (Metrics, error) {
	if impl.RoundTripper == nil {
		return nil, ErrUnsupported
	}
	srv, err := startChild("ws:" + impl.Server)
	if err != nil {
		return nil, err
	}
	defer srv.kill()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt, err := impl.RoundTripper(ctx, srv.addr)
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	for range 100 { // warm up
		if err := rt.RoundTrip(ctx); err != nil {
			return nil, err
		}
	}
	lat := make([]float64, 0, opt.Trips)
	cpu0, start := ProcCPU(srv.pid()), time.Now()
	for len(lat) < opt.Trips && time.Since(start) < opt.Time {
		t := time.Now()
		if err := rt.RoundTrip(ctx); err != nil {
			return nil, err
		}
		lat = append(lat, float64(time.Since(t).Nanoseconds())/1e3)
	}
	wall, cpu := time.Since(start), ProcCPU(srv.pid())-cpu0
	return Metrics{
		RTPerSec:       float64(len(lat)) / wall.Seconds(),
		P50Us:          Percentile(lat, 50),
		P99Us:          Percentile(lat, 99),
		ServerCPUPerRT: float64(cpu.Nanoseconds()) / float64(len(lat)),
		Delivered:      float64(len(lat)),
	}, nil
}

// errNoRole is returned by runChild for an unknown role.
var errNoRole = errors.New("bench: unknown child role")

// wsURL is the WebSocket URL of a server at addr.
func wsURL(addr string) string {
	return (&url.URL{Scheme: "ws", Host: addr, Path: WSPath}).String()
}
