package observe

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bus"
)

//go:embed static
var static embed.FS

// maxPages bounds the admin pages open at once.
const maxPages = 32

// snapshotTopic is the topic of the bridge requests that carry snapshots
// to the page (client.handle('snapshot', ...) in admin.js).
const snapshotTopic = "snapshot"

// Errors an action maps to HTTP statuses.
var (
	errBadRequest = errors.New("observe: bad request")
	errNotFound   = errors.New("observe: not found")
)

// Admin is the admin page: an http.Handler that the host mounts behind
// its own authorization hook (see [Authorize]). Make one with [NewAdmin]
// and release it with [Admin.Close]; it is safe for concurrent use.
//
// Under its mount point it serves the page ("…/"), its script and style,
// its WebSocket ("…/ws/", a bridge of its own on the same bus, which
// exposes nothing to clients: the admin pushes to the page) and the
// actions ("…/api/…"). Every request passes the hook first.
type Admin struct {
	bus  *bus.Bus
	cfg  adminConfig
	log  *slog.Logger
	br   *bridge.Bridge // the admin's own bridge, to the pages
	snap *snapshotter
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
	once sync.Once

	mu     sync.Mutex           // guards pages, gen, data, tick, closed
	pages  map[string]time.Time // admin bridge session → when it asked
	gen    uint64               // snapshots taken
	data   []byte               // the newest snapshot's JSON
	tick   chan struct{}        // closed when a new snapshot is taken
	closed bool
}

// NewAdmin returns the admin page of b. Give it an authorization hook
// ([Authorize] or [BasicAuth]): without one it refuses every request. It
// starts a bridge of its own (for the page's updates) and a goroutine that
// takes snapshots while a page is open; [Admin.Close] stops both. Close the
// admin before b.
func NewAdmin(b *bus.Bus, opts ...AdminOption) (*Admin, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil bus", ErrInvalidOption)
	}
	cfg := adminConfig{interval: 250 * time.Millisecond, dead: 50}
	for _, o := range opts {
		o.applyAdmin(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	a := &Admin{bus: b, cfg: cfg, log: cfg.logger, pages: make(map[string]time.Time), tick: make(chan struct{})}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	br, err := bridge.New(b,
		bridge.Authenticate(a.authenticate),
		bridge.ResumeWindow(30*time.Second),
		bridge.Heartbeat(10*time.Second),
		bridge.WithLogger(a.log),
	)
	if err != nil {
		return nil, fmt.Errorf("observe: admin bridge: %w", err)
	}
	a.br = br
	a.snap = newSnapshotter(b, &cfg)
	a.snap.own = func() int { return br.Stats().Sessions }
	a.ctx, a.stop = context.WithCancel(context.Background())
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.run()
	}()
	return a, nil
}

// Close stops the admin: its pages are disconnected, its goroutines end
// and its bridge closes. Later requests get HTTP 503. It may be called
// more than once; later calls return nil.
func (a *Admin) Close() error {
	a.once.Do(func() {
		a.mu.Lock()
		a.closed = true
		a.mu.Unlock()
		a.stop()
	})
	a.wg.Wait()
	return a.br.Close()
}

// authenticate is the admin bridge's hook: the page's WebSocket passes the
// same authorization as the page.
func (a *Admin) authenticate(r *http.Request) (bridge.Identity, error) {
	if a.cfg.authorize == nil {
		return bridge.Identity{}, bridge.ErrForbidden
	}
	user, err := a.callAuthorize(r)
	if err != nil {
		if errors.Is(err, ErrForbidden) {
			return bridge.Identity{}, fmt.Errorf("%w: %v", bridge.ErrForbidden, err)
		}
		return bridge.Identity{}, fmt.Errorf("%w: %v", bridge.ErrUnauthorized, err)
	}
	return bridge.Identity{ID: user}, nil
}

func (a *Admin) callAuthorize(r *http.Request) (user string, err error) {
	defer func() {
		if v := recover(); v != nil {
			a.log.Error("observe: Authorize hook panicked", "panic", v)
			user, err = "", fmt.Errorf("%w: hook panicked", ErrForbidden)
		}
	}()
	return a.cfg.authorize(r)
}

// ServeHTTP serves the page, its files, its WebSocket and its actions, to
// requests that pass the authorization hook.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	if a.cfg.authorize == nil {
		a.log.Warn("observe: admin request refused: no authorization hook", "remote", r.RemoteAddr)
		http.Error(w, "observe: the admin page has no authorization hook (observe.Authorize or observe.BasicAuth) and refuses to serve", http.StatusForbidden)
		return
	}
	user, err := a.callAuthorize(r)
	if err != nil {
		a.log.Info("observe: admin request refused", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
		if errors.Is(err, ErrForbidden) {
			http.Error(w, "observe: forbidden", http.StatusForbidden)
			return
		}
		if a.cfg.challenge != "" {
			h.Set("WWW-Authenticate", a.cfg.challenge)
		}
		http.Error(w, "observe: unauthorized", http.StatusUnauthorized)
		return
	}
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/ws/") || strings.HasSuffix(p, "/ws/client.js"):
		a.br.ServeHTTP(w, r)
	case isAction(p):
		a.serveAction(w, r, user, p[strings.LastIndex(p, "/api/")+len("/api/"):])
	case strings.HasSuffix(p, "/admin.js"):
		a.serveFile(w, r, "admin.js", "text/javascript; charset=utf-8")
	case strings.HasSuffix(p, "/admin.css"):
		a.serveFile(w, r, "admin.css", "text/css; charset=utf-8")
	case strings.HasSuffix(p, "/"):
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "+
			"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		a.serveFile(w, r, "index.html", "text/html; charset=utf-8")
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		u := *r.URL
		u.Path += "/"
		http.Redirect(w, r, u.RequestURI(), http.StatusMovedPermanently)
	default:
		http.NotFound(w, r)
	}
}

// isAction reports whether path names an action: ".../api/<name>".
func isAction(path string) bool {
	i := strings.LastIndex(path, "/api/")
	if i < 0 {
		return false
	}
	name := path[i+len("/api/"):]
	return name != "" && !strings.Contains(name, "/")
}

func (a *Admin) serveFile(w http.ResponseWriter, r *http.Request, name, ctype string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "observe: method not allowed", http.StatusMethodNotAllowed)
		return
	}
	data, err := static.ReadFile("static/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ctype)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
}

// ---- actions

// actionRequest is the body of every action; each uses some fields.
type actionRequest struct {
	Session   string `json:"session"`
	DeadTopic string `json:"dead_topic"`
	Seq       uint64 `json:"seq"`
	Room      string `json:"room"`
	Member    string `json:"member"`
}

// serveAction runs an action: a POST from the page's origin with the
// header X-Courier-Admin (which a cross-site form cannot send) and a JSON
// body.
func (a *Admin) serveAction(w http.ResponseWriter, r *http.Request, user, action string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "observe: actions are POST requests"})
		return
	}
	if r.Header.Get("X-Courier-Admin") == "" || !sameOrigin(r) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "observe: actions come from the admin page only"})
		return
	}
	var req actionRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "observe: bad JSON body: " + err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	var out any
	var err error
	switch action {
	case "watch":
		out, err = a.watch(ctx, req.Session)
	case "redrive":
		out, err = a.redrive(ctx, req.DeadTopic, req.Seq)
	case "leave":
		out, err = a.leave(ctx, req.Member, req.Room)
	case "disconnect":
		out, err = a.disconnect(req.Session)
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("observe: no action %q", action)})
		return
	}
	if action != "watch" {
		a.log.Info("observe: admin action", "user", user, "action", action, "session", req.Session,
			"dead_topic", req.DeadTopic, "seq", req.Seq, "room", req.Room, "member", req.Member, "err", err)
	}
	if err != nil {
		writeJSON(w, statusOf(err), map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, errBadRequest), errors.Is(err, bus.ErrInvalidTopic), errors.Is(err, bus.ErrInvalidOption),
		errors.Is(err, bus.ErrTypeMismatch):
		return http.StatusBadRequest
	case errors.Is(err, errNotFound), errors.Is(err, bridge.ErrNoSession):
		return http.StatusNotFound
	case errors.Is(err, bridge.ErrNotConnected):
		return http.StatusConflict
	case errors.Is(err, ErrUnsupported):
		return http.StatusNotImplemented
	case errors.Is(err, bus.ErrClosed), errors.Is(err, bridge.ErrClosed), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"error":"observe: encode answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(data)
}

// sameOrigin reports whether r comes from a page of the host it was sent
// to, judging by its Origin header (browsers send it with every POST).
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not from a browser's cross-origin request
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// watch makes the admin push snapshots to session, a session of the
// admin's bridge (the page's), and returns the current snapshot.
func (a *Admin) watch(ctx context.Context, session string) (json.RawMessage, error) {
	if _, ok := a.br.Identity(session); !ok {
		return nil, fmt.Errorf("%w: no admin session %q", errNotFound, session)
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, bus.ErrClosed
	}
	_, known := a.pages[session]
	if !known && len(a.pages) >= maxPages {
		a.mu.Unlock()
		return nil, fmt.Errorf("%w: at most %d admin pages are open at once", errBadRequest, maxPages)
	}
	a.pages[session] = time.Now()
	if !known {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.feed(session)
		}()
	}
	a.mu.Unlock()
	return json.Marshal(a.snap.take(ctx))
}

func (a *Admin) redrive(ctx context.Context, deadTopic string, seq uint64) (any, error) {
	known := slices.ContainsFunc(a.bus.Stats().Topics, func(t bus.TopicStats) bool { return t.Name == deadTopic })
	if !known {
		return nil, fmt.Errorf("%w: no dead-letter topic %q", errNotFound, deadTopic)
	}
	topic, seq2, err := a.snap.redrive(ctx, deadTopic, seq)
	if err != nil {
		return nil, err
	}
	return map[string]any{"topic": topic, "seq": seq2}, nil
}

func (a *Admin) leave(ctx context.Context, member, room string) (any, error) {
	if member == "" || room == "" {
		return nil, fmt.Errorf("%w: leave needs a member and a room", errBadRequest)
	}
	if !slices.Contains(a.bus.RoomMembers(room), member) {
		return nil, fmt.Errorf("%w: %q is not in room %q", errNotFound, member, room)
	}
	m, err := a.bus.Member(member)
	if err != nil {
		return nil, err
	}
	if err := m.Leave(ctx, room); err != nil {
		return nil, err
	}
	return map[string]any{"room": room, "member": member}, nil
}

func (a *Admin) disconnect(session string) (any, error) {
	if session == "" {
		return nil, fmt.Errorf("%w: disconnect needs a session", errBadRequest)
	}
	if err := disconnect(a.cfg.bridge, session); err != nil {
		return nil, err
	}
	return map[string]any{"session": session}, nil
}

// ---- pushing snapshots

// run takes a snapshot every interval while a page is open.
func (a *Admin) run() {
	t := time.NewTicker(a.cfg.interval)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		open := len(a.pages) > 0
		a.mu.Unlock()
		if !open {
			continue
		}
		data, err := json.Marshal(a.snap.take(a.ctx))
		if err != nil {
			a.log.Error("observe: encode snapshot", "err", err)
			continue
		}
		a.mu.Lock()
		a.gen++
		a.data = data
		close(a.tick)
		a.tick = make(chan struct{})
		a.mu.Unlock()
	}
}

// feed pushes each new snapshot to the page of session, one at a time: the
// page answers a push once it has drawn it, and a page that is slower than
// the interval skips snapshots. It ends when the session does.
func (a *Admin) feed(session string) {
	var sent uint64
	for {
		a.mu.Lock()
		gen, data, tick := a.gen, a.data, a.tick
		a.mu.Unlock()
		if gen == sent {
			select {
			case <-tick:
				continue
			case <-a.ctx.Done():
				return
			}
		}
		sent = gen
		ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
		_, err := a.br.Request(ctx, session, snapshotTopic, data)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, bridge.ErrNoSession), errors.Is(err, bridge.ErrClosed), a.ctx.Err() != nil:
			a.mu.Lock()
			delete(a.pages, session)
			a.mu.Unlock()
			return
		case errors.Is(err, bridge.ErrNotConnected):
			// The page is reconnecting: wait for its session to resume,
			// or to end (then Request says ErrNoSession).
			select {
			case <-time.After(a.cfg.interval):
			case <-a.ctx.Done():
			}
		default:
			a.log.Debug("observe: push to admin page", "session", session, "err", err)
		}
	}
}
