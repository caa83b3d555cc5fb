package bridge

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/olahol/melody"

	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
)

// Bridge is an http.Handler that connects WebSocket clients to a
// [bus.Bus]. Make one with [New] and mount it on the host's mux; it is safe
// for concurrent use.
type Bridge struct {
	bus  *bus.Bus
	cfg  config
	log  *slog.Logger
	m    *melody.Melody
	key  [32]byte // resume token HMAC key
	ns   string   // namespace prefix with its dot, or ""
	ctx  context.Context
	stop context.CancelFunc

	lifeMu      sync.Mutex // guards stopped, conns, closeCode, closeReason, and the Adds of wg and reqs
	stopped     bool
	conns       map[*conn]struct{}
	closeCode   int            // the close code of the first Close or Shutdown
	closeReason string         // and its reason
	wg          sync.WaitGroup // connections and timer callbacks
	reqs        sync.WaitGroup // client requests in progress
	loops       sync.WaitGroup // the clock loop and the catch-up workers
	begun       sync.Once      // starts the drain
	forced      sync.Once
	drained     chan struct{} // closed when the drain has ended every goroutine
	dErr        error         // what the drain met; read after drained
	told        atomic.Bool   // dErr was returned once
	byMS        sync.Map      // *melody.Session → *conn, from onConnect to finish

	helloMu sync.Mutex
	hellos  []helloWait // connections waiting for their hello, by deadline

	identMu    sync.Mutex     // guards identConns and every conn's counted
	identConns map[string]int // open connections by identity, with MaxConnections

	mu       sync.RWMutex // guards sessions
	sessions map[string]*session

	routeMu sync.Mutex // guards routes, watches
	presMu  sync.Mutex // orders the away and back events; taken under no other lock
	routes  map[string]*route
	watches map[string]*watch

	clock0  time.Time    // the bridge's clock counts from here
	clock   atomic.Int64 // nanoseconds since clock0, updated every few ms
	cq      catchupQueue
	reqSeq  atomic.Uint64
	stats   counters
	writePl sync.Pool // outbound batch buffers
}

// New returns a bridge between b and WebSocket clients. Nothing is exposed
// to clients until options say so (see [Expose]). The bridge does not close
// b; close the bridge first.
func New(b *bus.Bus, opts ...Option) (*Bridge, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil bus", ErrInvalidOption)
	}
	cfg := defaults()
	for _, o := range opts {
		o.applyBridge(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	br := &Bridge{
		bus:      b,
		cfg:      cfg,
		log:      cfg.logger,
		conns:    make(map[*conn]struct{}),
		sessions: make(map[string]*session),
		routes:   make(map[string]*route),
		watches:  make(map[string]*watch),
	}
	if cfg.maxConns > 0 {
		br.identConns = make(map[string]int)
	}
	if br.log == nil {
		br.log = slog.New(slog.DiscardHandler)
	}
	if cfg.namespace != "" {
		br.ns = cfg.namespace + "."
	}
	switch {
	case cfg.sessionKey != nil && len(cfg.sessionKey) < 16:
		return nil, errors.New("bridge: SessionKey needs at least 16 bytes")
	case cfg.sessionKey != nil:
		br.key = sha256.Sum256(cfg.sessionKey)
	default:
		if _, err := rand.Read(br.key[:]); err != nil {
			return nil, fmt.Errorf("bridge: resume key: %w", err)
		}
	}
	br.ctx, br.stop = context.WithCancel(context.Background())
	br.clock0 = time.Now()
	br.writePl.New = func() any { b := make([]byte, 0, 2048); return &b }
	br.m = br.newMelody()
	br.cq.init()
	br.drained = make(chan struct{})
	br.loops.Add(cfg.catchupWorkers + 1)
	go func() {
		defer br.loops.Done()
		br.clockLoop()
	}()
	for range cfg.catchupWorkers {
		go func() {
			defer br.loops.Done()
			br.catchupLoop()
		}()
	}
	return br, nil
}

// newMelody configures melody: its defaults accept any origin and read at
// most 512 bytes per message, and its per-session buffer drops messages
// silently when full; the bridge sets all three itself.
func (b *Bridge) newMelody() *melody.Melody {
	m := melody.New()
	m.Config.MaxMessageSize = int64(b.cfg.messageLimit)
	// The bridge hands melody one batch at a time, the next one once
	// melody wrote it; close frames go around the buffer (WriteControl).
	m.Config.MessageBufferSize = 1
	m.Config.WriteWait = b.cfg.writeTimeout
	m.Config.PingPeriod = b.cfg.heartbeat
	m.Config.PongWait = 2*b.cfg.heartbeat + 5*time.Second
	m.Upgrader.CheckOrigin = b.checkOrigin
	// 128 bytes hold any frame header and control frame; larger payloads
	// are read past the buffer.
	m.Upgrader.ReadBufferSize = 128
	m.Upgrader.WriteBufferSize = 8 << 10
	m.Upgrader.WriteBufferPool = &sync.Pool{}
	m.Upgrader.HandshakeTimeout = 10 * time.Second
	m.HandleConnect(b.onConnect)
	m.HandleMessage(b.onMessage)
	m.HandleMessageBinary(b.onBinary)
	m.HandleSentMessage(b.onSent)
	m.HandleError(b.onError)
	return m
}

// ServeHTTP serves the WebSocket at any path under the mount point, the
// browser client at "<mount>client.js", its TypeScript declarations at
// "<mount>client.d.ts" and those of the exposed topics at
// "<mount>topics.d.ts" ([Bridge.TypeScript]).
func (b *Bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch path.Base(r.URL.Path) {
	case "client.js":
		b.serveStatic(w, r, "courier.js")
		return
	case "client.d.ts":
		b.serveStatic(w, r, "courier.d.ts")
		return
	case "topics.d.ts":
		b.serveTypes(w, r)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		b.stats.refused.Add(1)
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "bridge: expected a WebSocket upgrade", http.StatusUpgradeRequired)
		return
	}
	if !b.checkOrigin(r) {
		b.stats.refused.Add(1)
		http.Error(w, "bridge: origin not allowed", http.StatusForbidden)
		return
	}
	var id Identity
	if b.cfg.authenticate != nil {
		var err error
		id, err = b.callAuthenticate(r)
		if err != nil {
			b.stats.refused.Add(1)
			b.log.Info("bridge: refused", "remote", r.RemoteAddr, "err", err)
			if errors.Is(err, ErrForbidden) {
				http.Error(w, "bridge: forbidden", http.StatusForbidden)
			} else {
				http.Error(w, "bridge: unauthorized", http.StatusUnauthorized)
			}
			return
		}
	}
	c := newConn(b, id, r.RemoteAddr)
	if !b.register(c) {
		b.stats.refused.Add(1)
		http.Error(w, "bridge: closed", http.StatusServiceUnavailable)
		return
	}
	// melody runs the connection's read loop inside HandleRequest. Run it
	// on a goroutine of its own and return from ServeHTTP as soon as the
	// connection is hijacked, so that net/http's per-connection buffers
	// and its goroutine are not kept alive for the life of the socket.
	hw := &hijackWriter{ResponseWriter: w}
	hw.gate.Lock()
	go b.serveConn(hw, r, c)
	hw.gate.Lock() // until hijacked, or served without a hijack
}

// serveConn runs one connection: melody's upgrade and read loop. Nothing
// here refers to the request or net/http's response writer once the
// connection is hijacked, so that the garbage collector frees them and
// net/http's per-connection buffers.
func (b *Bridge) serveConn(hw *hijackWriter, r *http.Request, c *conn) {
	defer b.wg.Done()
	remote := r.RemoteAddr
	if err := b.m.HandleRequestWithKeys(hw, r, map[string]any{connKey: c}); err != nil {
		b.log.Debug("bridge: upgrade failed", "remote", remote, "err", err)
	}
	hw.release()
	c.finish()
	b.unregister(c)
}

func (b *Bridge) callAuthenticate(r *http.Request) (id Identity, err error) {
	defer func() {
		if v := recover(); v != nil {
			b.log.Error("bridge: Authenticate hook panicked", "panic", v)
			err = fmt.Errorf("%w: hook panicked", ErrUnauthorized)
		}
	}()
	return b.cfg.authenticate(r)
}

// hijackWriter lets ServeHTTP return once the connection is hijacked. The
// connection's goroutine keeps it for the life of the socket, so it is
// small: a mutex that ServeHTTP waits on, unlocked once.
type hijackWriter struct {
	http.ResponseWriter
	released atomic.Bool
	gate     sync.Mutex // locked until release
}

func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err == nil {
		// From here the upgrader writes to nc only: let go of net/http's
		// response (and with it the connection's buffers).
		h.ResponseWriter = nil
		h.release()
	}
	return nc, rw, err
}

func (h *hijackWriter) release() {
	if h.released.CompareAndSwap(false, true) {
		h.gate.Unlock()
	}
}

// register records a new connection; false once the bridge is closing.
func (b *Bridge) register(c *conn) bool {
	b.lifeMu.Lock()
	defer b.lifeMu.Unlock()
	if b.stopped {
		return false
	}
	b.conns[c] = struct{}{}
	b.wg.Add(1)
	return true
}

func (b *Bridge) unregister(c *conn) {
	b.lifeMu.Lock()
	delete(b.conns, c)
	b.lifeMu.Unlock()
}

// enter counts a goroutine or callback the bridge must wait for, on wg
// (b.wg or b.reqs); false once the bridge is closing. Pair with wg.Done.
func (b *Bridge) enter(wg *sync.WaitGroup) bool {
	b.lifeMu.Lock()
	defer b.lifeMu.Unlock()
	if b.stopped {
		return false
	}
	wg.Add(1)
	return true
}

func (b *Bridge) closing() bool {
	b.lifeMu.Lock()
	defer b.lifeMu.Unlock()
	return b.stopped
}

// checkOrigin allows requests without an Origin header, the same origin as
// the Host header, and the configured origins.
func (b *Bridge) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range b.cfg.origins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// Close closes the bridge at once: every connection gets close code 1000
// ("closed"), frames still queued for it are dropped, client requests in
// progress are cancelled, every session ends (its member leaves its rooms)
// and the bridge's bus subscriptions end. It returns after every goroutine
// the bridge started has ended: that includes up to a second for the
// clients to answer their close frames (all at once), and the host's hooks
// (Authenticate, HelloAuth, Authorize) that are running, which it waits
// for: do not call it from one of them. Afterwards new connections get
// HTTP 503 and Request returns [ErrClosed].
//
// Close returns the errors it met ending sessions (a member that could not
// leave its rooms, with a [bus.Broker] that failed); it may be called more
// than once, also after a [Bridge.Shutdown] that returned early, and later
// calls return nil. melody's own Close does not wait for anything; this
// one does.
func (b *Bridge) Close() error {
	b.begin(wire.CloseNormal, "closed")
	b.force()
	<-b.drained
	return b.result()
}

// Shutdown closes the bridge gracefully: it refuses new connections and
// new client requests, waits for the client requests in progress to be
// answered, then closes every connection with close code 1001 ("going
// away", telling clients to reconnect, to another instance or to this one
// after a restart) once the frames queued for it are written, and then
// ends the sessions and the bridge's bus subscriptions as [Bridge.Close]
// does. It returns what Close would when that is done.
//
// If ctx ends first, Shutdown forces what is left, as Close does, and
// returns ctx.Err() without waiting for it; a later Close waits for it and
// returns promptly. Shutdown may be called more than once, and after
// Close.
func (b *Bridge) Shutdown(ctx context.Context) error {
	b.begin(wire.CloseGoingAway, "going away")
	select {
	case <-b.drained:
		return b.result()
	default:
	}
	select {
	case <-b.drained:
		return b.result()
	case <-ctx.Done():
		b.force()
		return ctx.Err()
	}
}

// begin stops the bridge taking new work and starts the drain, once: the
// first caller's close code is the one clients get.
func (b *Bridge) begin(code int, reason string) {
	b.begun.Do(func() {
		b.lifeMu.Lock()
		b.stopped = true
		b.closeCode, b.closeReason = code, reason
		b.lifeMu.Unlock()
		go b.drain()
	})
}

// force ends the work the drain waits for: it cancels the bridge's
// context (client requests, hooks) and closes every connection without
// writing what is queued for it.
func (b *Bridge) force() {
	b.forced.Do(func() {
		b.stop()
		for _, c := range b.connList() {
			c.kill(b.closeCode, b.closeReason)
		}
	})
}

// connList returns the open connections. The bridge accepts no new ones
// once it is stopped.
func (b *Bridge) connList() []*conn {
	b.lifeMu.Lock()
	defer b.lifeMu.Unlock()
	conns := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	return conns
}

// drain runs on a goroutine of its own from the first Close or Shutdown
// until everything the bridge started has ended; Close waits for it.
func (b *Bridge) drain() {
	defer close(b.drained)
	b.reqs.Wait()
	for _, c := range b.connList() {
		c.closeAfter(b.closeCode, b.closeReason)
	}
	b.wg.Wait()
	b.mu.Lock()
	sessions := make([]*session, 0, len(b.sessions))
	for _, s := range b.sessions {
		sessions = append(sessions, s)
	}
	b.mu.Unlock()
	var errs []error
	for _, s := range sessions {
		if err := s.end(); err != nil {
			errs = append(errs, err)
		}
	}
	// Routes and watches still being made see the maps replaced and drop
	// their subscriptions themselves.
	var subs []*bus.Subscription
	b.routeMu.Lock()
	for _, rt := range b.routes {
		if rt.sub != nil {
			subs = append(subs, rt.sub)
		}
	}
	for _, w := range b.watches {
		if w.sub != nil {
			subs = append(subs, w.sub)
		}
	}
	b.routes, b.watches = map[string]*route{}, map[string]*watch{}
	b.routeMu.Unlock()
	for _, sub := range subs {
		sub.Unsubscribe()
	}
	b.stop()
	b.cq.close()
	b.loops.Wait()
	b.m.Close() // errors only when closed before; nothing is left to close
	b.dErr = errors.Join(errs...)
}

// result is what the drain met, for the first caller to see it.
func (b *Bridge) result() error {
	if b.told.Swap(true) {
		return nil
	}
	return b.dErr
}

// Identity returns the identity of session sessionID (a client's member id
// in rooms and presence) and whether the session exists.
func (b *Bridge) Identity(sessionID string) (Identity, bool) {
	s := b.session(sessionID)
	if s == nil {
		return Identity{}, false
	}
	return s.ident, true
}

// now reads the bridge's coarse clock, which the clock loop advances every
// 10ms: ack deadlines need no finer time, and reading it costs nothing.
func (b *Bridge) now() int64 { return b.clock.Load() }

func (b *Bridge) session(id string) *session {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.sessions[id]
}

// ---- names

// busName maps a client's name into the namespace.
func (b *Bridge) busName(name string) string {
	if b.ns == "" {
		return name
	}
	return b.ns + name
}

// clientName maps a bus name back; ok is false when it is outside the
// namespace.
func (b *Bridge) clientName(name string) (string, bool) {
	if b.ns == "" {
		return name, true
	}
	return strings.CutPrefix(name, b.ns)
}

func (b *Bridge) clientNames(names []string) []string {
	if len(names) == 0 || b.ns == "" {
		return names
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		if c, ok := b.clientName(n); ok {
			out = append(out, c)
		}
	}
	return out
}

// exposed reports whether the host opened name (a client topic, pattern or
// room) for action.
func (b *Bridge) exposed(action Action, name string) bool {
	list := b.cfg.topics
	if action.room() {
		list = b.cfg.rooms
	}
	for _, e := range list {
		for _, a := range e.actions {
			if a == action && covers(e.pattern, name) {
				return true
			}
		}
	}
	return false
}

// roomExposed reports whether room is exposed for any room action.
func (b *Bridge) roomExposed(room string) bool {
	for _, e := range b.cfg.rooms {
		if covers(e.pattern, room) {
			return true
		}
	}
	return false
}

// covers reports whether every topic matched by pattern p is matched by
// pattern e.
func covers(e, p string) bool {
	for {
		et, erest, emore := strings.Cut(e, ".")
		pt, prest, pmore := strings.Cut(p, ".")
		switch {
		case et == ">":
			return true
		case pt == ">":
			return false
		case et == "*":
			// covers a literal or '*'
		case et != pt:
			return false
		}
		if !emore || !pmore {
			return emore == pmore
		}
		e, p = erest, prest
	}
}
