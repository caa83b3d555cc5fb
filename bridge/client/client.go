package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/courierbus/courier/bridge/internal/wire"
)

// Client is a connection to a Courier bridge that reconnects by itself and
// resumes its session. Make one with [Dial]; it is safe for concurrent use.
type Client struct {
	urls     []string // url and the fallbacks
	urlNext  int      // the one to dial next; used by the connecting goroutine only
	cfg      config
	log      *slog.Logger
	ctx      context.Context // ends at Close
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	instance string
	events   eventQueue

	mu        sync.Mutex
	cur       *link         // nil while disconnected
	up        chan struct{} // closed while a link is up; replaced when it drops
	session   string
	token     string
	heartbeat time.Duration
	subs      map[string]*Subscription
	rooms     map[string]struct{}
	watches   map[string]func(PresenceEvent)
	handlers  map[string]RequestHandler
	pending   map[string]chan *wire.Frame
	nextID    uint64
	closed    bool
	stopErr   error // why reconnecting stopped
}

// RequestHandler serves a server request (see [Client.Handle]). Its result is
// encoded as JSON ([]byte and json.RawMessage are sent as they are).
type RequestHandler func(ctx context.Context, data json.RawMessage) (any, error)

// EventType says what an [Event] reports.
type EventType int

const (
	// Connected: a connection is up. Resumed tells whether the session was
	// resumed, Recovered per subscription whether it lost nothing.
	Connected EventType = iota + 1
	// Disconnected: the connection dropped (Err says why); the client
	// reconnects unless Err is terminal (then Closed follows).
	Disconnected
	// Resync: the server's history no longer held messages of Topic owed
	// to subscription Sub; delivery continues at Seq.
	Resync
	// ServerError: an error frame that answered no call of this client.
	ServerError
	// Stopped: the client stopped reconnecting for good (Err says why:
	// refused credentials, another connection took the session, or an
	// unsupported version).
	Stopped
)

// String returns the event type's name.
func (t EventType) String() string {
	switch t {
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Resync:
		return "resync"
	case ServerError:
		return "error"
	case Stopped:
		return "stopped"
	}
	return "EventType(" + strconv.Itoa(int(t)) + ")"
}

// Event reports a change of the client's connection.
type Event struct {
	Type      EventType
	Session   string
	Resumed   bool
	Recovered map[string]bool // subscription id → nothing lost
	Err       error
	Sub       string
	Topic     string
	Seq       uint64
}

// Dial connects to the bridge at url (ws:// or wss://) and says hello. It
// returns once the session is established, or the first connection's
// error; afterwards the client reconnects by itself with exponential
// backoff and jitter, resuming its session, until Close.
func Dial(ctx context.Context, url string, opts ...Option) (*Client, error) {
	cfg := config{minBackoff: 100 * time.Millisecond, maxBackoff: 10 * time.Second, handshake: 10 * time.Second}
	for _, o := range opts {
		o.applyClient(&cfg)
	}
	if cfg.minBackoff <= 0 || cfg.maxBackoff < cfg.minBackoff {
		return nil, errors.New("client: backoff must be positive, min at most max")
	}
	if cfg.dialer == nil {
		cfg.dialer = &websocket.Dialer{HandshakeTimeout: cfg.handshake, Proxy: http.ProxyFromEnvironment}
	}
	var inst [6]byte
	rand.Read(inst[:])
	c := &Client{
		cfg: cfg, log: cfg.logger, instance: hex.EncodeToString(inst[:]),
		up: make(chan struct{}), subs: make(map[string]*Subscription), rooms: make(map[string]struct{}),
		watches: make(map[string]func(PresenceEvent)), handlers: make(map[string]RequestHandler),
		pending: make(map[string]chan *wire.Frame),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.events.init(cfg.onEvent)
	c.urls = append([]string{url}, cfg.fallback...)
	l, w, rest, err := c.connect(ctx)
	for i := 1; err != nil && i < len(c.urls) && ctx.Err() == nil; i++ {
		l, w, rest, err = c.connect(ctx)
	}
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		c.events.run()
	}()
	c.start(l, w, rest, true)
	go func() {
		defer c.wg.Done()
		c.run(l)
		c.events.close()
	}()
	return c, nil
}

// SessionID returns the current session's id: the client's member id in
// rooms and presence, and the id the server uses in Bridge.Request.
func (c *Client) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// Close ends the session (the server drops its subscriptions and rooms at
// once), closes the connection, and returns after the client's goroutines,
// handlers included, have returned. Later calls return nil.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.wg.Wait()
		return nil
	}
	c.closed = true
	l := c.cur
	c.mu.Unlock()
	if l != nil {
		if f, err := wire.Encode(&wire.Frame{Op: wire.OpBye}); err == nil {
			l.send(f)
			l.closeAfterQueue(time.Second)
		}
	}
	c.cancel()
	c.wg.Wait()
	return nil
}

// ---- calls

func (c *Client) newID() string {
	c.nextID++
	return "c" + strconv.FormatUint(c.nextID, 10)
}

// link waits for a connection, within ctx.
func (c *Client) link(ctx context.Context) (*link, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if c.stopErr != nil {
			err := c.stopErr
			c.mu.Unlock()
			return nil, fmt.Errorf("%w: %v", ErrNotConnected, err)
		}
		l, up := c.cur, c.up
		c.mu.Unlock()
		if l != nil {
			return l, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// call sends f with a fresh id on the current link and waits for its
// answer. It fails with ErrDisconnected when the link drops first.
func (c *Client) call(ctx context.Context, f *wire.Frame) (*wire.Frame, error) {
	l, err := c.link(ctx)
	if err != nil {
		return nil, err
	}
	ch := make(chan *wire.Frame, 1)
	c.mu.Lock()
	f.ID = c.newID()
	c.pending[f.ID] = ch
	c.mu.Unlock()
	if !c.send(l, f) {
		c.forget(f.ID)
		return nil, ErrDisconnected
	}
	select {
	case a, ok := <-ch:
		if !ok {
			return nil, ErrDisconnected
		}
		if a.Op == wire.OpError {
			return nil, &Error{Code: a.Code, Message: a.Message}
		}
		return a, nil
	case <-ctx.Done():
		c.forget(f.ID)
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, ErrClosed
	}
}

func (c *Client) forget(id string) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// ---- events

type eventQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	q      []Event
	f      func(Event)
	closed bool
}

func (q *eventQueue) init(f func(Event)) {
	q.f = f
	q.cond.L = &q.mu
}

func (q *eventQueue) push(e Event) {
	if q.f == nil {
		return
	}
	q.mu.Lock()
	if !q.closed {
		q.q = append(q.q, e)
		q.cond.Signal()
	}
	q.mu.Unlock()
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

func (q *eventQueue) run() {
	for {
		q.mu.Lock()
		for len(q.q) == 0 && !q.closed {
			q.cond.Wait()
		}
		if len(q.q) == 0 {
			q.mu.Unlock()
			return
		}
		e := q.q[0]
		q.q = q.q[1:]
		q.mu.Unlock()
		q.f(e)
	}
}
