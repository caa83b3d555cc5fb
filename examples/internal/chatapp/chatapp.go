package chatapp

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/tsgen"
	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/observe"
	"github.com/courierbus/courier/persist"
)

//go:embed index.html
var page []byte

// script is the page's script, served at /chat.js.
//
//go:embed chat.js
var script []byte

// favicon is the page's icon, served at /favicon.svg: from the server's
// own origin, as the page's Content-Security-Policy (default-src 'self')
// requires; a data: URL would be refused, with an error in the console.
//
//go:embed favicon.svg
var favicon []byte

// busURLs is the element of the page that lists the bridges it connects
// to; a server with [Failover] peers writes its own list there.
const busURLs = `<script id="bus-urls" type="application/json">["./bus/"]</script>`

// Topics, endpoints and rooms. A room "lobby" has its messages on the topic
// "chat.lobby"; only the room's members may subscribe and publish there
// (see authorize), so joining the room is what lets a user read it.
const (
	ChatPrefix   = "chat."
	RoomsList    = "rooms.list"     // endpoint: active rooms and their member counts
	RoomPosition = "rooms.position" // endpoint: where a room's history ends
	// AdminTopic is not exposed to clients: the page's /announce command
	// publishes there and gets "forbidden".
	AdminTopic = "admin.announce"
)

// Option configures [New].
type Option interface{ apply(*config) }

type config struct {
	log           *slog.Logger
	history       int
	adminPassword string
	store         *persist.Store
	commits       *observe.Commits
	peers         []string
	sessionKey    []byte
	accounts      *Accounts
	closers       []io.Closer
	handlers      map[string]http.Handler
}

type optFunc func(*config)

func (f optFunc) apply(c *config) { f(c) }

// WithLogger sets the logger of the server and its bridge. Default: discard.
func WithLogger(l *slog.Logger) Option { return optFunc(func(c *config) { c.log = l }) }

// History sets how many of a room's last messages the page shows on
// joining it. Default 50.
func History(n int) Option { return optFunc(func(c *config) { c.history = n }) }

// AdminPassword opens the admin page at /admin/ to the user "admin" with
// this password. Default "": the page stays closed.
func AdminPassword(pw string) Option { return optFunc(func(c *config) { c.adminPassword = pw }) }

// WithStore shows st, the bus's store, on /metrics and the admin page. The
// server does not close it (see [CloseAfter]).
func WithStore(st *persist.Store) Option { return optFunc(func(c *config) { c.store = st }) }

// WithCommits adds the store's commit histograms to /metrics.
func WithCommits(cm *observe.Commits) Option { return optFunc(func(c *config) { c.commits = cm }) }

// Failover names the pages of the other nodes of a cluster sharing the
// bus's topics ("http://127.0.0.1:8082/"), in the order the page should try
// them. The page connects to its own server's bridge first and, when that
// connection drops, to their bridges ("<page>bus/") in turn. Their pages
// may connect to this server's bridge, and this server's page may connect
// to theirs (its Content-Security-Policy names them).
func Failover(pages ...string) Option {
	return optFunc(func(c *config) { c.peers = append(c.peers, pages...) })
}

// MaxTopics is the bound the chat's buses put on their topics
// (bus.MaxTopics): every room a page joins makes two (its messages and its
// presence events).
const MaxTopics = 20000

// SessionKey gives the bridge the secret key shared by the nodes of a
// cluster (bridge.SessionKey): a page that fails over keeps its session id,
// so its user stays in the rooms' member lists without leaving and joining.
// The session cookies of sign-in are signed with a key derived from it, so
// every node honours them. Default: a random key of this server's.
func SessionKey(key []byte) Option { return optFunc(func(c *config) { c.sessionKey = key }) }

// WithAccounts makes the server sign users in against a, which the nodes
// of a cluster share. Default: accounts of this server's own.
func WithAccounts(a *Accounts) Option { return optFunc(func(c *config) { c.accounts = a }) }

// Handle serves h at pattern (an http.ServeMux pattern) beside the chat:
// examples/cluster serves its nodes' controls at /nodes/ this way.
func Handle(pattern string, h http.Handler) Option {
	return optFunc(func(c *config) {
		if c.handlers == nil {
			c.handlers = make(map[string]http.Handler)
		}
		c.handlers[pattern] = h
	})
}

// CloseAfter makes Close and Shutdown close cs, in order, after the bridge:
// the bus and what it stands on. New does not close them when it fails.
func CloseAfter(cs ...io.Closer) Option {
	return optFunc(func(c *config) { c.closers = append(c.closers, cs...) })
}

// Server is the chat on one bus: the bridge mounted at /bus/, the page at
// /, Prometheus metrics at /metrics and the admin page at /admin/.
type Server struct {
	bus      *bus.Bus
	bridge   *bridge.Bridge
	admin    *observe.Admin // nil until made
	handler  http.Handler
	log      *slog.Logger
	history  int
	closers  []io.Closer
	accounts *Accounts
	cookies  cookies
}

// New serves the chat on b.
func New(b *bus.Bus, opts ...Option) (*Server, error) {
	cfg := config{history: 50}
	for _, o := range opts {
		o.apply(&cfg)
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	if cfg.history <= 0 {
		cfg.history = 50
	}
	body, csp, origins, err := failover(cfg.peers)
	if err != nil {
		return nil, err
	}
	log := cfg.log
	s := &Server{bus: b, log: log, history: cfg.history, accounts: cfg.accounts, cookies: cookieKey(cfg.sessionKey)}
	if s.accounts == nil {
		s.accounts = NewAccounts()
	}
	if err := s.endpoints(); err != nil {
		return nil, err
	}
	bopts := []bridge.Option{
		bridge.WithLogger(log),
		bridge.Authenticate(s.authenticate), // the session cookie of sign-in
		bridge.HelloAuth(requireSignIn),
		bridge.Authorize(s.authorize),
		bridge.ExposeTyped[Message](ChatPrefix+"*", bridge.Subscribe, bridge.Publish),
		bridge.Expose("rooms.*", bridge.Request),
		bridge.ExposeRooms("*", bridge.Join, bridge.Presence),
	}
	if len(origins) > 0 {
		bopts = append(bopts, bridge.AllowOrigins(origins...))
	}
	if cfg.sessionKey != nil {
		bopts = append(bopts, bridge.SessionKey(cfg.sessionKey))
	}
	docs, err := tsgen.ParseDocs(typesSource, reflect.TypeFor[Message]().PkgPath())
	if err != nil {
		return nil, err
	}
	bopts = append(bopts, bridge.TypeScriptOptions(tsgen.WithDocs(docs)))
	br, err := bridge.New(b, bopts...)
	if err != nil {
		return nil, err
	}
	s.bridge = br

	// Metrics: the bus, the bridge and the store, read when scraped, plus
	// the Go runtime's and the process's own.
	colOpts := []observe.CollectorOption{observe.WithBridge(br)}
	if cfg.commits != nil {
		colOpts = append(colOpts, observe.WithCommits(cfg.commits))
	}
	adminOpts := []observe.AdminOption{observe.WithBridge(br), observe.WithLogger(log)}
	if cfg.store != nil {
		colOpts = append(colOpts, observe.WithStore(cfg.store))
		adminOpts = append(adminOpts, observe.WithStore(cfg.store))
	}
	col, err := observe.NewCollector(b, colOpts...)
	if err != nil {
		s.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(col, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The admin page, behind the password.
	if cfg.adminPassword != "" {
		adminOpts = append(adminOpts, observe.BasicAuth("admin", cfg.adminPassword))
	}
	if s.admin, err = observe.NewAdmin(b, adminOpts...); err != nil {
		s.Close()
		return nil, err
	}
	s.closers = cfg.closers

	mux := http.NewServeMux()
	mux.Handle("/bus/", br)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	if cfg.adminPassword != "" {
		mux.Handle("/admin/", s.admin)
	} else {
		mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "chat: the admin page is closed; start the chat with -admin-password to open it", http.StatusForbidden)
		})
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy",
			"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src "+csp)
		w.Write(body)
	})
	mux.HandleFunc("GET /chat.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(script)
	})
	mux.HandleFunc("POST /signin", s.signIn)
	mux.HandleFunc("GET /favicon.svg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Cache-Control", "max-age=86400")
		w.Write(favicon)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	for pattern, h := range cfg.handlers {
		mux.Handle(pattern, h)
	}
	s.handler = mux
	return s, nil
}

// cookieKey returns the signer of session cookies: under a key derived
// from the cluster's session key, or a random one.
func cookieKey(sessionKey []byte) cookies {
	if sessionKey == nil {
		key := make([]byte, 32)
		rand.Read(key)
		return cookies{key}
	}
	h := hmac.New(sha256.New, sessionKey)
	h.Write([]byte("chat: session cookies"))
	return cookies{h.Sum(nil)}
}

// failover returns the page, the sources of its connect-src and the
// origins the bridge lets in, for the peers' pages.
func failover(peers []string) (body []byte, csp string, origins []string, err error) {
	if len(peers) == 0 {
		return page, "'self'", nil, nil
	}
	urls := []string{"./bus/"}
	srcs := []string{"'self'"}
	for _, p := range peers {
		u, err := url.Parse(p)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, "", nil, fmt.Errorf("chat: failover page %q is not an http(s) URL", p)
		}
		ws := "ws"
		if u.Scheme == "https" {
			ws = "wss"
		}
		origin := u.Scheme + "://" + u.Host
		urls = append(urls, u.JoinPath("bus/").String())
		srcs = append(srcs, origin, ws+"://"+u.Host)
		origins = append(origins, origin)
	}
	list, err := json.Marshal(urls) // escapes <, > and &: safe in a script element
	if err != nil {
		return nil, "", nil, err
	}
	if !bytes.Contains(page, []byte(busURLs)) {
		return nil, "", nil, errors.New("chat: the page has no list of bridges to fill in")
	}
	el := `<script id="bus-urls" type="application/json">` + string(list) + `</script>`
	body = bytes.Replace(page, []byte(busURLs), []byte(el), 1)
	return body, strings.Join(srcs, " "), origins, nil
}

// authorize lets only the members of a room read and write its topic:
// "chat.lobby" needs the session that asks to be in the room "lobby"
// itself; another session of the same user does not count.
func (s *Server) authorize(ctx context.Context, id bridge.Identity, action bridge.Action, name string) error {
	if action != bridge.Subscribe && action != bridge.Publish {
		return nil
	}
	room, ok := strings.CutPrefix(name, ChatPrefix)
	if !ok {
		return nil
	}
	if sid, ok := bridge.SessionID(ctx); ok && slices.Contains(s.bus.RoomMembers(room), sid) {
		return nil
	}
	return fmt.Errorf("chat: %s is not in the room %q", id.ID, room)
}

func (s *Server) endpoints() error {
	list, err := bus.NewEndpoint[RoomsQuery, []RoomInfo](s.bus, RoomsList)
	if err != nil {
		return err
	}
	if _, err := list.Handle(func(ctx context.Context, _ RoomsQuery) ([]RoomInfo, error) {
		out := []RoomInfo{}
		for _, r := range s.bus.Rooms() {
			if bus.ValidateTopic(r) != nil || strings.Contains(r, ".") {
				continue
			}
			out = append(out, RoomInfo{Name: r, Members: len(s.bus.RoomMembers(r))})
		}
		return out, nil
	}); err != nil {
		return err
	}
	pos, err := bus.NewEndpoint[PositionQuery, Position](s.bus, RoomPosition)
	if err != nil {
		return err
	}
	_, err = pos.Handle(func(ctx context.Context, req PositionQuery) (Position, error) {
		if err := bus.ValidateTopic(req.Room); err != nil || strings.Contains(req.Room, ".") {
			return Position{}, fmt.Errorf("chat: bad room name %q", req.Room)
		}
		p, err := s.bus.Position(ctx, ChatPrefix+req.Room)
		if err != nil {
			return Position{}, err
		}
		return Position{Room: req.Room, Epoch: strconv.FormatUint(p.Epoch, 10), Seq: p.Seq, History: s.history}, nil
	})
	return err
}

// Handler returns the page (/ and /chat.js), the bridge at /bus/,
// /metrics, the admin page at /admin/ and /healthz.
func (s *Server) Handler() http.Handler { return s.handler }

// Shutdown tells clients to come back later (close code 1001), closes the
// bridge, then what [CloseAfter] named.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.closeAdmin()
	if s.bridge != nil {
		err = s.bridge.Shutdown(ctx)
		s.bridge.Close()
	}
	return errors.Join(err, s.closeRest())
}

// Close closes the bridge (close code 1000), then what [CloseAfter] named.
func (s *Server) Close() error {
	s.closeAdmin()
	if s.bridge != nil {
		s.bridge.Close()
	}
	return s.closeRest()
}

// closeAdmin closes the admin page (its own bridge to the open admin
// pages), before the bus it reads.
func (s *Server) closeAdmin() {
	if s.admin != nil {
		s.admin.Close()
	}
}

func (s *Server) closeRest() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	s.closers = nil
	return errors.Join(errs...)
}

// Serve serves the chat on ln until ctx ends, then shuts down: the HTTP
// server first (no new connections), then s. timeout bounds reading and
// writing a plain HTTP request (0: 30 seconds).
func Serve(ctx context.Context, ln net.Listener, s *Server, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	// The timeouts bound plain HTTP requests; a WebSocket connection is
	// hijacked, which clears them, and the bridge runs its own heartbeat.
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       timeout,
		WriteTimeout:      timeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	serr := srv.Shutdown(sctx)
	if err == nil {
		err = <-errc
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, serr, s.Shutdown(sctx))
}
