package observe

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"time"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bus"
)

// CollectorOption configures [NewCollector].
type CollectorOption interface{ applyCollector(*collectorConfig) }

// AdminOption configures [NewAdmin].
type AdminOption interface{ applyAdmin(*adminConfig) }

// Option is accepted by both [NewCollector] and [NewAdmin].
type Option interface {
	CollectorOption
	AdminOption
}

type collectorConfig struct {
	bridge     *bridge.Bridge
	store      Store
	commits    *Commits
	topicLabel func(string) string
	maxLabels  int
}

func (c *collectorConfig) validate() error {
	if c.maxLabels < 1 {
		return fmt.Errorf("%w: MaxLabels %d, want at least 1", ErrInvalidOption, c.maxLabels)
	}
	return nil
}

type adminConfig struct {
	bridge    *bridge.Bridge
	store     Store
	authorize func(*http.Request) (string, error)
	challenge string // WWW-Authenticate value sent with 401
	interval  time.Duration
	logger    *slog.Logger
	dead      int
}

func (c *adminConfig) validate() error {
	if c.interval < 50*time.Millisecond || c.interval > time.Minute {
		return fmt.Errorf("%w: Interval %v, want 50ms to 1m", ErrInvalidOption, c.interval)
	}
	if c.dead < 1 || c.dead > 1000 {
		return fmt.Errorf("%w: DeadLetters %d, want 1 to 1000", ErrInvalidOption, c.dead)
	}
	return nil
}

type withBridge struct{ br *bridge.Bridge }

func (o withBridge) applyCollector(c *collectorConfig) { c.bridge = o.br }
func (o withBridge) applyAdmin(c *adminConfig)         { c.bridge = o.br }

// WithBridge adds a bridge: the collector exports its connection, session
// and frame counters, and the admin page lists its sessions and can
// disconnect its clients. Default: none.
func WithBridge(br *bridge.Bridge) Option { return withBridge{br} }

// Store is what observe reads of the store a bus keeps its topics in: a
// snapshot of its counters. persist's *Store implements it; observe
// declares it, rather than importing persist, so that the metrics of a bus
// kept in memory do not bring Badger into the program.
type Store interface {
	// Stats returns a snapshot of the store's counters. The collector
	// calls it once per scrape and the admin once per snapshot, possibly
	// concurrently: it must be safe for concurrent use and cheap.
	Stats() bus.StoreStats
}

type withStore struct{ st Store }

func (o withStore) applyCollector(c *collectorConfig) { c.store = o.st }
func (o withStore) applyAdmin(c *adminConfig)         { c.store = o.st }

// WithStore adds the store the bus keeps its topics in, a *persist.Store:
// the collector exports its commit counters and disk sizes, and the admin
// page shows them. Default: none; a nil st, or a nil *persist.Store, adds
// none.
func WithStore(st Store) Option {
	if v := reflect.ValueOf(st); !v.IsValid() || v.Kind() == reflect.Pointer && v.IsNil() {
		st = nil
	}
	return withStore{st}
}

type withCommits struct{ c *Commits }

func (o withCommits) applyCollector(c *collectorConfig) { c.commits = o.c }

// WithCommits makes the collector export the commit histograms that c
// fills from persist's OnCommit hook (see [NewCommits]). Without it they
// are not exported; c may also be registered on its own instead.
func WithCommits(c *Commits) CollectorOption { return withCommits{c} }

type topicLabel func(string) string

func (o topicLabel) applyCollector(c *collectorConfig) { c.topicLabel = o }

// TopicLabel sets how a topic name or subscription pattern becomes the
// value of the "topic" or "pattern" label, for hosts whose topics are many
// ("chat.room42.messages" to "chat.*.messages", say). Series whose names
// map to the same value are summed. f sees names that do not start with
// '$' only: the bus's own topics always fold into "$rooms" and "$dead".
// Default: the name itself.
func TopicLabel(f func(name string) string) CollectorOption { return topicLabel(f) }

type maxLabels int

func (o maxLabels) applyCollector(c *collectorConfig) { c.maxLabels = int(o) }

// MaxLabels bounds how many distinct values the "topic" label, and
// separately the "pattern" label, may take. Values are kept in the order
// they were first seen; later ones share the value "$other", so a series
// never moves from one label value to another. Default 500.
func MaxLabels(n int) CollectorOption { return maxLabels(n) }

type authorize struct {
	f         func(*http.Request) (string, error)
	challenge string
}

func (o authorize) applyAdmin(c *adminConfig) { c.authorize, c.challenge = o.f, o.challenge }

// Authorize sets the hook that every request to the admin page passes: the
// page, its script, its WebSocket and every action. The hook returns the
// user's name, which the admin logs with each action, or an error: HTTP 403
// when it wraps [ErrForbidden], 401 otherwise. It runs on the request's
// goroutine and may be called concurrently. There is no default: an Admin
// without a hook refuses every request.
func Authorize(f func(r *http.Request) (user string, err error)) AdminOption {
	return authorize{f: f}
}

// BasicAuth is [Authorize] with HTTP basic authentication against one user
// name and password, compared in constant time. A request without them, or
// with others, gets HTTP 401 with a challenge, so a browser asks for them.
// An empty password refuses everyone.
func BasicAuth(user, password string) AdminOption {
	wantUser, wantPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	empty := password == ""
	return authorize{
		challenge: `Basic realm="Courier admin", charset="UTF-8"`,
		f: func(r *http.Request) (string, error) {
			u, p, ok := r.BasicAuth()
			if !ok || empty {
				return "", ErrUnauthorized
			}
			gu, gp := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
			if subtle.ConstantTimeCompare(gu[:], wantUser[:])&subtle.ConstantTimeCompare(gp[:], wantPass[:]) != 1 {
				return "", fmt.Errorf("%w: wrong user name or password", ErrUnauthorized)
			}
			return u, nil
		},
	}
}

type interval time.Duration

func (o interval) applyAdmin(c *adminConfig) { c.interval = time.Duration(o) }

// Interval sets how often the admin pushes a snapshot to each open page.
// Default 250ms; from 50ms to 1 minute. Nothing is gathered while no page
// is open.
func Interval(d time.Duration) AdminOption { return interval(d) }

type deadLetters int

func (o deadLetters) applyAdmin(c *adminConfig) { c.dead = int(o) }

// DeadLetters sets how many of the newest dead letters the page shows (and
// the admin keeps decoded in memory), over all dead-letter topics. Default
// 50; at most 1000.
func DeadLetters(n int) AdminOption { return deadLetters(n) }

type withLogger struct{ l *slog.Logger }

func (o withLogger) applyAdmin(c *adminConfig) { c.logger = o.l }

// WithLogger sends the admin's log to l: every action with its user and
// outcome, and refused requests. By default it is discarded.
func WithLogger(l *slog.Logger) AdminOption { return withLogger{l} }
