package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bus"
)

// Soak scenario: a bridge over a bus in a child process (so that the
// resident set read is the server's alone), many Go clients in this one,
// each subscribed to one of a few topics and in two rooms, and a steady
// publisher in the server.

// SoakConfig is the shape of a soak run.
type SoakConfig struct {
	Conns       int           // clients (default 5000)
	Duration    time.Duration // how long to publish (default 10 minutes)
	Rate        int           // messages published per second, over all topics (default 50)
	Topics      int           // topics the clients spread over (default 50)
	ReportEvery time.Duration // interval between reports (default 1 minute)
	Warmup      time.Duration // when the resident set is taken as reference (default 2 minutes)
	Settle      time.Duration // how long to wait for goroutines to come back after the clients leave (default 30 s)
}

// DefaultSoakConfig returns the defaults of a soak run.
func DefaultSoakConfig() SoakConfig {
	var c SoakConfig
	c.defaults()
	return c
}

func (c *SoakConfig) defaults() {
	if c.Conns <= 0 {
		c.Conns = 5000
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Minute
	}
	if c.Rate <= 0 {
		c.Rate = 50
	}
	if c.Topics <= 0 {
		c.Topics = 50
	}
	if c.ReportEvery <= 0 {
		c.ReportEvery = time.Minute
	}
	if c.Warmup <= 0 {
		c.Warmup = 2 * time.Minute
	}
	if c.Settle <= 0 {
		c.Settle = 30 * time.Second
	}
}

// soakHistory is the bus's default history ring, which the soak fills
// before it begins.
const soakHistory = 1024

// SoakSample is one report of a soak run.
type SoakSample struct {
	Elapsed    time.Duration
	RSS        int64   // server resident set, bytes
	Goroutines int     // server goroutines
	Conns      int     // server connections
	PerSecond  float64 // messages delivered to clients per second over the interval
	P50, P99   time.Duration
	Reconnects int64 // client reconnects so far
}

// SoakResult is what a soak run measured, and its verdict.
type SoakResult struct {
	Config           SoakConfig
	Machine          Machine
	Before           SoakSample // before any client connected
	Samples          []SoakSample
	After            SoakSample // after every client left
	AfterGC          int64      // server resident set after a forced collection
	Delivered        int64
	Published        int64
	RSSRef, RSSMin   int64 // the sample at Warmup, and the extremes from there on
	RSSMax           int64
	RSSOK            bool // every sample from Warmup on within ±10% of RSSRef
	GoroutinesOK     bool // back to Before.Goroutines
	DeliveryOK       bool // every interval delivered, no client stopped
	ClientsStopped   int64
	ClientErrors     []string
	DeliveriesPerSec float64 // the fan-out asked for: rate × subscribers per topic
}

// OK reports whether the run passed every check.
func (r *SoakResult) OK() bool { return r.RSSOK && r.GoroutinesOK && r.DeliveryOK }

// soakStats is the server's answer to /ctl/stats.
type soakStats struct {
	RSS        int64 `json:"rss"`
	Goroutines int   `json:"goroutines"`
	Conns      int   `json:"conns"`
	Sessions   int   `json:"sessions"`
	Routes     int   `json:"routes"`
	Published  int64 `json:"published"`
}

// serveSoak is the soak server: a bus and a bridge at /bus/, and
// /ctl/stats, /ctl/publish?rate=R&topics=T, /ctl/stop, /ctl/gc and
// /ctl/quit.
func serveSoak() error {
	if _, err := RaiseFileLimit(); err != nil {
		return err
	}
	b, err := bus.New()
	if err != nil {
		return err
	}
	br, err := bridge.New(b, bridge.Expose("soak.>", bridge.Subscribe), bridge.ExposeRooms(">", bridge.Join))
	if err != nil {
		b.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/bus/", br)
	var published atomic.Int64
	var pubMu sync.Mutex
	var pubStop chan struct{}
	var pubWG sync.WaitGroup
	stopPublishing := func() {
		pubMu.Lock()
		defer pubMu.Unlock()
		if pubStop != nil {
			close(pubStop)
			pubWG.Wait()
			pubStop = nil
		}
	}
	stats := func() soakStats {
		s := br.Stats()
		return soakStats{RSS: RSS(0), Goroutines: runtime.NumGoroutine(), Conns: s.Connections,
			Sessions: s.Sessions, Routes: s.Routes, Published: published.Load()}
	}
	mux.HandleFunc("/ctl/stats", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(stats())
	})
	mux.HandleFunc("/ctl/gc", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		debug.FreeOSMemory()
		json.NewEncoder(w).Encode(stats())
	})
	mux.HandleFunc("/ctl/publish", func(w http.ResponseWriter, r *http.Request) {
		rate, _ := strconv.Atoi(r.FormValue("rate"))
		topics, _ := strconv.Atoi(r.FormValue("topics"))
		if rate <= 0 || topics <= 0 {
			http.Error(w, "rate and topics must be positive", http.StatusBadRequest)
			return
		}
		stopPublishing()
		pubMu.Lock()
		defer pubMu.Unlock()
		pubStop = make(chan struct{})
		stop := pubStop
		pubWG.Go(func() { publishSteadily(b, rate, topics, stop, &published) })
	})
	mux.HandleFunc("/ctl/stop", func(w http.ResponseWriter, r *http.Request) { stopPublishing() })
	mux.HandleFunc("/ctl/fill", func(w http.ResponseWriter, r *http.Request) {
		topics, _ := strconv.Atoi(r.FormValue("topics"))
		n, _ := strconv.Atoi(r.FormValue("n"))
		for k := range topics {
			room := bus.To("r" + strconv.Itoa(k))
			for i := range n {
				data := []byte(`{"t":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `,"k":-1}`)
				var opts []bus.PublishOption
				if i%2 == 1 {
					opts = append(opts, room) // as publishSteadily does
				}
				if _, err := b.PublishRaw(context.Background(), "soak.t"+strconv.Itoa(k), data, opts...); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
			}
		}
	})
	quit := make(chan struct{})
	var quitOnce sync.Once
	mux.HandleFunc("/ctl/quit", func(w http.ResponseWriter, r *http.Request) { quitOnce.Do(func() { close(quit) }) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go hs.Serve(ln)
	fmt.Println("listening", ln.Addr())
	<-quit
	stopPublishing()
	time.Sleep(10 * time.Millisecond) // let the quit answer go out
	return errors.Join(br.Close(), hs.Close(), b.Close())
}

// publishSteadily publishes rate messages a second, in turn to topics
// soak.t0..soak.t<topics-1>; every other one is addressed to the topic's
// room. Each message carries its publish time in nanoseconds.
func publishSteadily(b *bus.Bus, rate, topics int, stop <-chan struct{}, published *atomic.Int64) {
	names := make([]string, topics)
	rooms := make([]bus.PublishOption, topics)
	for i := range names {
		names[i] = "soak.t" + strconv.Itoa(i)
		rooms[i] = bus.To("r" + strconv.Itoa(i))
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	start := time.Now()
	var sent int64
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			due := int64(now.Sub(start).Seconds() * float64(rate))
			for ; sent < due; sent++ {
				k := int(sent % int64(topics))
				data := []byte(`{"t":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `,"k":` + strconv.FormatInt(sent, 10) + `}`)
				var opts []bus.PublishOption
				if sent%2 == 1 {
					opts = append(opts, rooms[k])
				}
				if _, err := b.PublishRaw(context.Background(), names[k], data, opts...); err != nil {
					return
				}
				published.Add(1)
			}
		}
	}
}

// latencies collects delivery latencies of one interval.
type latencies struct {
	mu sync.Mutex
	ns []int64
	n  atomic.Int64 // delivered in the interval
}

func (l *latencies) add(data []byte) {
	l.n.Add(1)
	// data is {"t":<ns>,...}: read the number without decoding the rest.
	if len(data) < 6 {
		return
	}
	v, _ := parseInt(data[5:])
	d := time.Now().UnixNano() - v
	l.mu.Lock()
	l.ns = append(l.ns, d)
	l.mu.Unlock()
}

// take returns the interval's count and percentiles and starts a new one.
func (l *latencies) take() (n int64, p50, p99 time.Duration) {
	l.mu.Lock()
	ns := l.ns
	l.ns = make([]int64, 0, len(ns))
	n = l.n.Swap(0)
	l.mu.Unlock()
	if len(ns) == 0 {
		return n, 0, 0
	}
	slices.Sort(ns)
	return n, time.Duration(ns[len(ns)*50/100]), time.Duration(ns[len(ns)*99/100])
}

// Soak runs the soak scenario, printing a line per report to out, and
// returns what it measured. It returns an error when the run could not
// be carried out; a run that ends with a failed verdict is no error (see
// [SoakResult.OK]). Cancelling ctx ends the publishing early.
func Soak(ctx context.Context, cfg SoakConfig, out io.Writer) (*SoakResult, error) {
	cfg.defaults()
	if _, err := RaiseFileLimit(); err != nil {
		return nil, err
	}
	res := &SoakResult{Config: cfg, Machine: ThisMachine()}
	subsPerTopic := float64(cfg.Conns) / float64(cfg.Topics)
	res.DeliveriesPerSec = float64(cfg.Rate) * subsPerTopic
	fmt.Fprintf(out, "soak: %d connections, %d topics (%.0f subscribers each), %d messages/s => %.0f deliveries/s, for %v; %d cores, %s\n",
		cfg.Conns, cfg.Topics, subsPerTopic, cfg.Rate, res.DeliveriesPerSec, cfg.Duration, res.Machine.Cores, res.Machine.Go)

	srv, err := startChild("soak")
	if err != nil {
		return nil, err
	}
	defer srv.kill()
	srv.ctl = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	stats := func(path string) (soakStats, error) {
		var s soakStats
		body, err := srv.get(path)
		if err == nil {
			err = json.Unmarshal([]byte(body), &s)
		}
		return s, err
	}
	// Fill every topic's history ring first, as a server that has run for
	// a while has it: at one message a second per topic the rings would
	// otherwise grow for 17 minutes, and the run would measure that.
	if _, err := srv.get(fmt.Sprintf("/ctl/fill?topics=%d&n=%d", cfg.Topics, soakHistory)); err != nil {
		return nil, err
	}
	before, err := stats("/ctl/gc")
	if err != nil {
		return nil, err
	}
	res.Before = SoakSample{RSS: before.RSS, Goroutines: before.Goroutines}
	fmt.Fprintf(out, "before: history rings filled (%d messages per topic): rss %s, %d goroutines\n", soakHistory, mib(before.RSS), before.Goroutines)

	// Connect, subscribe, join.
	var lat latencies
	var reconnects, stopped atomic.Int64
	var errMu sync.Mutex
	onEvent := func(ev client.Event) {
		switch ev.Type {
		case client.Disconnected:
			reconnects.Add(1)
		case client.Stopped, client.ServerError, client.Resync:
			if ev.Type == client.Stopped {
				stopped.Add(1)
			}
			errMu.Lock()
			if len(res.ClientErrors) < 10 {
				res.ClientErrors = append(res.ClientErrors, fmt.Sprintf("%v: %v", ev.Type, ev.Err))
			}
			errMu.Unlock()
		}
	}
	handle := func(_ context.Context, m *client.Message) error {
		lat.add(m.Data)
		return nil
	}
	url := "ws://" + srv.addr + "/bus/"
	clients := make([]*client.Client, cfg.Conns)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	dialStart := time.Now()
	var next atomic.Int64
	var dialErr error
	var dialMu sync.Mutex
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.Conns {
					return
				}
				c, err := soakClient(ctx, url, i, cfg.Topics, handle, onEvent)
				if err != nil {
					dialMu.Lock()
					dialErr = errors.Join(dialErr, err)
					dialMu.Unlock()
					return
				}
				clients[i] = c
			}
		})
	}
	wg.Wait()
	if dialErr != nil {
		return nil, dialErr
	}
	s, err := stats("/ctl/stats")
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "connected %d clients in %v: rss %s, %d goroutines\n", s.Conns, time.Since(dialStart).Round(time.Millisecond), mib(s.RSS), s.Goroutines)

	// Publish steadily and report.
	if _, err := srv.get(fmt.Sprintf("/ctl/publish?rate=%d&topics=%d", cfg.Rate, cfg.Topics)); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "%8s %10s %10s %6s %12s %9s %9s %10s\n", "elapsed", "rss", "goroutines", "conns", "delivered/s", "p50", "p99", "reconnects")
	start := time.Now()
	lat.take()
	tick := time.NewTicker(cfg.ReportEvery)
	last := start
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case now := <-tick.C:
			n, p50, p99 := lat.take()
			s, err := stats("/ctl/stats")
			if err != nil {
				tick.Stop()
				return nil, err
			}
			sm := SoakSample{Elapsed: now.Sub(start).Round(time.Second), RSS: s.RSS, Goroutines: s.Goroutines, Conns: s.Conns,
				PerSecond: float64(n) / now.Sub(last).Seconds(), P50: p50, P99: p99, Reconnects: reconnects.Load()}
			last = now
			res.Samples = append(res.Samples, sm)
			fmt.Fprintf(out, "%8v %10s %10d %6d %12.0f %9v %9v %10d\n", sm.Elapsed, mib(sm.RSS), sm.Goroutines, sm.Conns,
				sm.PerSecond, sm.P50.Round(10*time.Microsecond), sm.P99.Round(10*time.Microsecond), sm.Reconnects)
			res.Delivered += n
			done = now.Sub(start) >= cfg.Duration-cfg.ReportEvery/10
		}
	}
	tick.Stop()
	if _, err := srv.get("/ctl/stop"); err != nil {
		return nil, err
	}
	if s, err = stats("/ctl/stats"); err == nil {
		res.Published = s.Published
	}

	// Everyone leaves; the server must come back to where it began.
	closeStart := time.Now()
	for i, c := range clients {
		wg.Go(func() { c.Close() })
		clients[i] = nil
		if i%64 == 63 {
			wg.Wait()
		}
	}
	wg.Wait()
	deadline := time.Now().Add(cfg.Settle)
	for {
		s, err = stats("/ctl/stats")
		if err != nil {
			return nil, err
		}
		if s.Conns == 0 && s.Sessions == 0 && s.Goroutines <= before.Goroutines || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	res.After = SoakSample{Elapsed: time.Since(closeStart).Round(time.Millisecond), RSS: s.RSS, Goroutines: s.Goroutines, Conns: s.Conns}
	if g, err := stats("/ctl/gc"); err == nil {
		res.AfterGC = g.RSS
	}
	res.ClientsStopped = stopped.Load()
	res.verdict()
	fmt.Fprintf(out, "after: all %d clients closed, server back in %v: rss %s (%s after a forced GC), %d goroutines (%d before), %d connections, %d sessions, %d routes\n",
		cfg.Conns, res.After.Elapsed, mib(res.After.RSS), mib(res.AfterGC), s.Goroutines, before.Goroutines, s.Conns, s.Sessions, s.Routes)
	fmt.Fprintf(out, "published %d, delivered %d (%.0f%% of published × %0.f subscribers)\n", res.Published, res.Delivered,
		100*float64(res.Delivered)/(float64(res.Published)*subsPerTopic), subsPerTopic)
	fmt.Fprintln(out, res.VerdictText())
	return res, nil
}

// soakClient dials client i: it subscribes to its topic and joins its
// topic's room and the lobby.
func soakClient(ctx context.Context, url string, i, topics int, h client.Handler, onEvent func(client.Event)) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, url, client.OnEvent(onEvent), client.ReconnectBackoff(100*time.Millisecond, 2*time.Second))
	if err != nil {
		return nil, fmt.Errorf("soak: dial %d: %w", i, err)
	}
	k := strconv.Itoa(i % topics)
	if _, err := c.Subscribe(ctx, "soak.t"+k, h); err != nil {
		c.Close()
		return nil, fmt.Errorf("soak: subscribe %d: %w", i, err)
	}
	if err := c.Join(ctx, "r"+k, "lobby"); err != nil {
		c.Close()
		return nil, fmt.Errorf("soak: join %d: %w", i, err)
	}
	return c, nil
}

// verdict applies the acceptance checks.
func (r *SoakResult) verdict() {
	r.RSSOK = false
	for _, s := range r.Samples {
		if s.Elapsed < r.Config.Warmup {
			continue
		}
		if r.RSSRef == 0 {
			r.RSSRef, r.RSSMin, r.RSSMax = s.RSS, s.RSS, s.RSS
		}
		r.RSSMin, r.RSSMax = min(r.RSSMin, s.RSS), max(r.RSSMax, s.RSS)
	}
	if r.RSSRef > 0 {
		r.RSSOK = float64(r.RSSMax) <= 1.1*float64(r.RSSRef) && float64(r.RSSMin) >= 0.9*float64(r.RSSRef)
	}
	r.GoroutinesOK = r.After.Goroutines <= r.Before.Goroutines && r.After.Conns == 0
	r.DeliveryOK = len(r.Samples) > 0 && r.ClientsStopped == 0
	for _, s := range r.Samples {
		if s.PerSecond <= 0 {
			r.DeliveryOK = false
		}
	}
}

// VerdictText says whether the run passed, and why not.
func (r *SoakResult) VerdictText() string {
	mark := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "FAIL"
	}
	rss := "no sample after the warm-up"
	if r.RSSRef > 0 {
		rss = fmt.Sprintf("%s..%s from %v on, %+.1f%%..%+.1f%% of %s at %v", mib(r.RSSMin), mib(r.RSSMax), r.Config.Warmup,
			100*(float64(r.RSSMin)/float64(r.RSSRef)-1), 100*(float64(r.RSSMax)/float64(r.RSSRef)-1), mib(r.RSSRef), r.Config.Warmup)
	}
	v := "PASS"
	if !r.OK() {
		v = "FAIL"
	}
	return fmt.Sprintf("verdict: %s\n  rss within ±10%%: %s (%s)\n  goroutines back: %s (%d after, %d before)\n  delivery continued: %s (every interval delivered; %d clients stopped)",
		v, mark(r.RSSOK), rss, mark(r.GoroutinesOK), r.After.Goroutines, r.Before.Goroutines, mark(r.DeliveryOK), r.ClientsStopped)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
