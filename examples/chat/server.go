package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/observe"
	"github.com/courierbus/courier/persist"
)

//go:embed index.html
var page []byte

// config is what the command line sets.
type config struct {
	addr    string        // listen address
	dataDir string        // Badger directory; ignored with memory
	memory  bool          // keep everything in memory
	history int           // messages shown on joining a room
	logger  *slog.Logger  // nil: discard
	timeout time.Duration // http.Server read and write timeouts; 0: 30s
	// adminPassword opens the admin page at /admin/ to the user "admin"
	// with this password; "" leaves it closed.
	adminPassword string
}

// Topics, endpoints and rooms. A room "lobby" has its messages on the topic
// "chat.lobby"; only the room's members may subscribe and publish there
// (see authorize), so joining the room is what lets a user read it.
const (
	chatPrefix   = "chat."
	roomsList    = "rooms.list"     // endpoint: active rooms and their member counts
	roomPosition = "rooms.position" // endpoint: where a room's history ends
	// adminTopic is not exposed to clients: the page's /announce command
	// publishes there and gets "forbidden".
	adminTopic = "admin.announce"
)

// server is the chat: a bus (on Badger unless memory), the bridge mounted
// at /bus/, the page at /, Prometheus metrics at /metrics and the admin
// page at /admin/.
type server struct {
	bus     *bus.Bus
	store   *persist.Store // nil in memory
	bridge  *bridge.Bridge
	admin   *observe.Admin // nil until made
	handler http.Handler
	log     *slog.Logger
	history int
}

func newServer(cfg config) (*server, error) {
	log := cfg.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{log: log, history: cfg.history}
	if s.history <= 0 {
		s.history = 50
	}
	var busOpts []bus.Option
	// The store's commit histograms are filled by its OnCommit hook, so
	// they exist before the store.
	commits := observe.NewCommits()
	if !cfg.memory {
		st, err := persist.Open(cfg.dataDir, persist.Retain(persist.Limits{Count: 10000}), persist.OnCommit(commits.Observe))
		if err != nil {
			return nil, fmt.Errorf("chat: open %s: %w", cfg.dataDir, err)
		}
		s.store = st
		busOpts = append(busOpts, bus.WithStore(st))
	}
	b, err := bus.New(append(busOpts, bus.WithLogger(log))...)
	if err != nil {
		s.closeStore()
		return nil, err
	}
	s.bus = b
	if err := s.endpoints(); err != nil {
		s.Close()
		return nil, err
	}
	br, err := bridge.New(b,
		bridge.WithLogger(log),
		bridge.HelloAuth(helloAuth),
		bridge.Authorize(s.authorize),
		bridge.Expose(chatPrefix+"*", bridge.Subscribe, bridge.Publish),
		bridge.Expose("rooms.*", bridge.Request),
		bridge.ExposeRooms("*", bridge.Join, bridge.Presence),
	)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.bridge = br

	// Metrics: the bus, the bridge and the store, read when scraped, plus
	// the Go runtime's and the process's own.
	colOpts := []observe.CollectorOption{observe.WithBridge(br), observe.WithCommits(commits)}
	adminOpts := []observe.AdminOption{observe.WithBridge(br), observe.WithLogger(log)}
	if s.store != nil {
		colOpts = append(colOpts, observe.WithStore(s.store))
		adminOpts = append(adminOpts, observe.WithStore(s.store))
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
			"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
		w.Write(page)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	s.handler = mux
	return s, nil
}

// helloAuth takes the user's chosen name from the hello's auth payload
// ({"name":"alice"}) as the session's identity: presence shows it.
func helloAuth(_ context.Context, _ bridge.Identity, auth json.RawMessage) (bridge.Identity, error) {
	var a struct {
		Name string `json:"name"`
	}
	if len(auth) == 0 || json.Unmarshal(auth, &a) != nil {
		return bridge.Identity{}, errors.New(`chat: hello needs auth {"name": "..."}`)
	}
	name := strings.TrimSpace(a.Name)
	if err := validName(name); err != nil {
		return bridge.Identity{}, err
	}
	return bridge.Identity{ID: name}, nil
}

// validName accepts 1 to 24 letters, digits, spaces, '_' and '-'.
func validName(name string) error {
	if name == "" || utf8.RuneCountInString(name) > 24 {
		return errors.New("chat: a name has 1 to 24 characters")
	}
	for _, r := range name {
		switch {
		case r == ' ' || r == '_' || r == '-':
		case unicode.IsLetter(r), unicode.IsDigit(r):
		default:
			return fmt.Errorf("chat: %q is not allowed in a name", r)
		}
	}
	return nil
}

// authorize lets only the members of a room read and write its topic:
// "chat.lobby" needs the session that asks to be in the room "lobby"
// itself; another session of the same user does not count.
func (s *server) authorize(ctx context.Context, id bridge.Identity, action bridge.Action, name string) error {
	if action != bridge.Subscribe && action != bridge.Publish {
		return nil
	}
	room, ok := strings.CutPrefix(name, chatPrefix)
	if !ok {
		return nil
	}
	if sid, ok := bridge.SessionID(ctx); ok && slices.Contains(s.bus.RoomMembers(room), sid) {
		return nil
	}
	return fmt.Errorf("chat: %s is not in the room %q", id.ID, room)
}

// roomInfo is a room in the rooms.list answer.
type roomInfo struct {
	Name    string `json:"name"`
	Members int    `json:"members"`
}

// position is a room's history end. The epoch is a string, as on the wire:
// it uses all 64 bits, which JavaScript numbers cannot hold.
type position struct {
	Room    string `json:"room"`
	Epoch   string `json:"epoch"`
	Seq     uint64 `json:"seq"`
	History int    `json:"history"` // how many messages the page shows on joining
}

func (s *server) endpoints() error {
	list, err := bus.NewEndpoint[struct{}, []roomInfo](s.bus, roomsList)
	if err != nil {
		return err
	}
	if _, err := list.Handle(func(ctx context.Context, _ struct{}) ([]roomInfo, error) {
		out := []roomInfo{}
		for _, r := range s.bus.Rooms() {
			if bus.ValidateTopic(r) != nil || strings.Contains(r, ".") {
				continue
			}
			out = append(out, roomInfo{Name: r, Members: len(s.bus.RoomMembers(r))})
		}
		return out, nil
	}); err != nil {
		return err
	}
	pos, err := bus.NewEndpoint[struct {
		Room string `json:"room"`
	}, position](s.bus, roomPosition)
	if err != nil {
		return err
	}
	_, err = pos.Handle(func(ctx context.Context, req struct {
		Room string `json:"room"`
	}) (position, error) {
		if err := bus.ValidateTopic(req.Room); err != nil || strings.Contains(req.Room, ".") {
			return position{}, fmt.Errorf("chat: bad room name %q", req.Room)
		}
		p, err := s.bus.Position(ctx, chatPrefix+req.Room)
		if err != nil {
			return position{}, err
		}
		return position{Room: req.Room, Epoch: strconv.FormatUint(p.Epoch, 10), Seq: p.Seq, History: s.history}, nil
	})
	return err
}

// Handler returns the page, the bridge at /bus/, /metrics, the admin page
// at /admin/ and /healthz.
func (s *server) Handler() http.Handler { return s.handler }

// Shutdown tells clients to come back later (close code 1001) and closes
// the bus and the store.
func (s *server) Shutdown(ctx context.Context) error {
	var err error
	s.closeAdmin()
	if s.bridge != nil {
		err = s.bridge.Shutdown(ctx)
		s.bridge.Close()
	}
	return errors.Join(err, s.closeBus())
}

// Close closes the bridge (close code 1000), the bus and the store.
func (s *server) Close() error {
	s.closeAdmin()
	if s.bridge != nil {
		s.bridge.Close()
	}
	return s.closeBus()
}

// closeAdmin closes the admin page (its own bridge to the open admin
// pages), before the bus it reads.
func (s *server) closeAdmin() {
	if s.admin != nil {
		s.admin.Close()
	}
}

func (s *server) closeBus() error {
	var err error
	if s.bus != nil {
		err = s.bus.Close()
	}
	return errors.Join(err, s.closeStore())
}

func (s *server) closeStore() error {
	if s.store == nil {
		return nil
	}
	return s.store.Close()
}

// serve serves the chat on ln until ctx ends, then shuts down: the HTTP
// server first (no new connections), then the bridge, bus and store.
func serve(ctx context.Context, ln net.Listener, s *server, timeout time.Duration) error {
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
