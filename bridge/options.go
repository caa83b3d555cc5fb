package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bridge/tsgen"
	"github.com/courierbus/courier/bus"
)

// Option configures a [Bridge] in [New].
type Option interface{ applyBridge(*config) }

// Identity is who a client is, as the host's [Authenticate] hook (and
// [HelloAuth] hook) said. The bridge passes it to [Authorize] and binds
// resume tokens to its ID.
type Identity struct {
	// ID names the user or service; "" is anonymous. Presence shows it as
	// "user".
	ID string
	// Attrs carries whatever else the host wants its hooks to see.
	Attrs map[string]string
}

// Headers the bridge sets on every message a client publishes, naming the
// publisher. No client can set them: header names starting with "courier-"
// (in any case) are the bridge's, and a client's own headers under such
// names are dropped. So subscribers, in-process or clients, can trust them
// on messages that clients published; messages published in-process carry
// whatever headers the host gave them.
const (
	// HeaderUser is the publishing session's [Identity] ID; absent for
	// anonymous clients.
	HeaderUser = wire.HeaderUser
	// HeaderSession is the publishing session's id: its member id in rooms
	// and presence, as [SessionID] gives it to hooks; [Bridge.Identity]
	// maps it back to the identity.
	HeaderSession = wire.HeaderSession
)

// Action is something a client asks to do, passed to an [Authorize] hook
// and granted by [Expose] and [ExposeRooms].
type Action string

// Actions. Subscribe, Publish and Request apply to topics (and endpoints);
// Join and Presence apply to rooms.
const (
	Subscribe Action = "subscribe"
	Publish   Action = "publish"
	Request   Action = "request"
	Join      Action = "join"
	Presence  Action = "presence"
)

func (a Action) room() bool { return a == Join || a == Presence }

type exposure struct {
	pattern string
	actions []Action
	typ     reflect.Type // ExposeTyped's payload type, or nil
}

type config struct {
	sessionKey   []byte
	namespace    string
	logger       *slog.Logger
	authenticate func(*http.Request) (Identity, error)
	helloAuth    func(context.Context, Identity, json.RawMessage) (Identity, error)
	authorize    func(context.Context, Identity, Action, string) error
	topics       []exposure
	rooms        []exposure
	origins      []string
	tsOpts       []tsgen.Option

	resumeWindow     time.Duration
	handshakeTimeout time.Duration
	heartbeat        time.Duration
	writeTimeout     time.Duration
	hookTimeout      time.Duration
	publishTimeout   time.Duration
	requestTimeout   time.Duration
	frameLimit       int
	messageLimit     int
	maxSubs          int
	rate             float64
	burst            int
	strikeRate       float64
	strikeBurst      int
	outbound         int
	maxInflight      int
	maxRequests      int
	maxRooms         int
	maxConns         int
	fanoutQueue      int
	catchupWorkers   int
}

func defaults() config {
	return config{
		resumeWindow:     2 * time.Minute,
		handshakeTimeout: 10 * time.Second,
		heartbeat:        25 * time.Second,
		writeTimeout:     10 * time.Second,
		hookTimeout:      5 * time.Second,
		publishTimeout:   10 * time.Second,
		requestTimeout:   30 * time.Second,
		frameLimit:       64 << 10,
		messageLimit:     256 << 10,
		maxSubs:          64,
		rate:             1000,
		burst:            2000,
		strikeRate:       1,
		strikeBurst:      20,
		outbound:         1 << 20,
		maxInflight:      4096,
		maxRequests:      16,
		maxRooms:         64,
		fanoutQueue:      8192,
		catchupWorkers:   4,
	}
}

func (c *config) validate() error {
	switch {
	case c.resumeWindow < 0, c.handshakeTimeout <= 0, c.heartbeat <= 0, c.writeTimeout <= 0,
		c.publishTimeout <= 0, c.requestTimeout <= 0:
		return fmt.Errorf("%w: durations must be positive", ErrInvalidOption)
	case c.frameLimit < 1024 || c.messageLimit < c.frameLimit:
		return fmt.Errorf("%w: frame limit at least 1 KiB and at most the message limit", ErrInvalidOption)
	case c.maxSubs < 1, c.rate <= 0, c.burst < 1, c.strikeRate <= 0, c.strikeBurst < 1,
		c.outbound < 4096, c.maxInflight < 1, c.maxRequests < 1, c.maxRooms < 1, c.maxConns < 0:
		return fmt.Errorf("%w: limits must be positive (outbound at least 4 KiB)", ErrInvalidOption)
	}
	if c.namespace != "" {
		if err := bus.ValidateTopic(c.namespace); err != nil || strings.HasPrefix(c.namespace, "$") {
			return fmt.Errorf("%w: namespace %q", ErrInvalidOption, c.namespace)
		}
	}
	for _, e := range c.topics {
		if err := bus.ValidatePattern(e.pattern); err != nil {
			return fmt.Errorf("%w: Expose: %v", ErrInvalidOption, err)
		}
		for _, a := range e.actions {
			if a != Subscribe && a != Publish && a != Request {
				return fmt.Errorf("%w: Expose(%q): %q is not a topic action", ErrInvalidOption, e.pattern, a)
			}
		}
	}
	for _, e := range c.rooms {
		if err := bus.ValidatePattern(e.pattern); err != nil {
			return fmt.Errorf("%w: ExposeRooms: %v", ErrInvalidOption, err)
		}
		for _, a := range e.actions {
			if !a.room() {
				return fmt.Errorf("%w: ExposeRooms(%q): %q is not a room action", ErrInvalidOption, e.pattern, a)
			}
		}
	}
	return nil
}

// optFunc is for options that carry no comparable value (hooks) and for
// tests.
type optFunc func(*config)

func (f optFunc) applyBridge(c *config) { f(c) }

type namespaceOpt string

func (o namespaceOpt) applyBridge(c *config) { c.namespace = string(o) }

type originsOpt struct{ origins []string }

func (o originsOpt) applyBridge(c *config) { c.origins = append(c.origins, o.origins...) }

type exposeOpt struct {
	rooms bool
	e     exposure
}

func (o exposeOpt) applyBridge(c *config) {
	if o.rooms {
		c.rooms = append(c.rooms, o.e)
	} else {
		c.topics = append(c.topics, o.e)
	}
}

// durOpt sets one duration of the config.
type durOpt struct {
	which int
	d     time.Duration
}

const (
	durResume = iota
	durHandshake
	durHeartbeat
	durWrite
	durPublish
	durRequest
)

func (o durOpt) applyBridge(c *config) {
	*[...]*time.Duration{&c.resumeWindow, &c.handshakeTimeout, &c.heartbeat, &c.writeTimeout,
		&c.publishTimeout, &c.requestTimeout}[o.which] = o.d
}

// intOpt sets one integer limit of the config.
type intOpt struct {
	which int
	n     int
}

const (
	intFrame = iota
	intMessage
	intSubs
	intOutbound
	intInflight
	intRequests
	intRooms
	intConns
)

func (o intOpt) applyBridge(c *config) {
	*[...]*int{&c.frameLimit, &c.messageLimit, &c.maxSubs, &c.outbound, &c.maxInflight,
		&c.maxRequests, &c.maxRooms, &c.maxConns}[o.which] = o.n
}

type rateOpt struct {
	strikes bool
	rate    float64
	burst   int
}

func (o rateOpt) applyBridge(c *config) {
	if o.strikes {
		c.strikeRate, c.strikeBurst = o.rate, o.burst
	} else {
		c.rate, c.burst = o.rate, o.burst
	}
}

// Namespace mounts the bridge under a topic prefix: every topic, pattern,
// room and endpoint name a client uses is taken relative to prefix (client
// "chat.a" is bus topic "<prefix>.chat.a"), and clients cannot name
// anything outside it. Give each namespace its own Bridge with its own
// hooks. Default: no prefix.
func Namespace(prefix string) Option { return namespaceOpt(prefix) }

// WithLogger sends the bridge's logs (refused connections, slow clients,
// recovered panics) to l. By default they are discarded.
func WithLogger(l *slog.Logger) Option { return optFunc(func(c *config) { c.logger = l }) }

// Authenticate sets the hook that identifies a client from its HTTP
// request (cookies, headers, query) before the WebSocket upgrade. An error
// refuses the request without upgrading: HTTP 403 when it wraps
// [ErrForbidden], 401 otherwise. By default every client is anonymous.
func Authenticate(f func(r *http.Request) (Identity, error)) Option {
	return optFunc(func(c *config) { c.authenticate = f })
}

// HelloAuth sets a hook that checks the "auth" payload of the client's
// hello frame (for browsers, which cannot set headers on a WebSocket) and
// returns the session's identity; id is what [Authenticate] returned. An
// error refuses the hello with the code "unauthorized" and closes the
// connection with 4001. By default the payload is ignored.
func HelloAuth(f func(ctx context.Context, id Identity, auth json.RawMessage) (Identity, error)) Option {
	return optFunc(func(c *config) { c.helloAuth = f })
}

// Authorize sets a hook that every client action passes after the
// exposure check ([Expose], [ExposeRooms]); name is the topic, pattern or
// room as the client named it (without the namespace). ctx carries the
// id of the session that asks: see [SessionID]. An error refuses the
// action with the code "forbidden". The hook runs on the connection's
// read loop and should be quick; ctx ends after 5 seconds. By default
// every exposed action is allowed.
func Authorize(f func(ctx context.Context, id Identity, action Action, name string) error) Option {
	return optFunc(func(c *config) { c.authorize = f })
}

type sessionKey struct{}

// SessionID returns the id of the session an [Authorize] hook is asked
// about, from the hook's ctx: the client's member id in rooms and presence
// ([bus.Bus.RoomMembers] lists it), the same as [HeaderSession] on its
// publishes. It lets a hook decide per session rather than per identity,
// which several sessions may share. ok is false for a ctx that does not
// come from the bridge.
func SessionID(ctx context.Context) (id string, ok bool) {
	id, ok = ctx.Value(sessionKey{}).(string)
	return id, ok
}

// Expose opens the topics matching pattern to clients for the given
// actions ([Subscribe], [Publish], [Request]). Topics are closed unless
// exposed. A client's subscription pattern must be covered by one exposed
// pattern. May be given several times.
func Expose(pattern string, actions ...Action) Option {
	return exposeOpt{e: exposure{pattern: pattern, actions: actions}}
}

// ExposeTyped is [Expose] for topics whose payloads are T: it opens them
// the same way and declares T as their payload in the bridge's TypeScript
// declarations ([Bridge.TypeScript]); for [Request], T is the request's
// payload. Use it for patterns, whose topics are made as clients name
// them: a topic bound by [bus.NewTopic] (and an endpoint bound by
// [bus.NewEndpoint]) declares its own types. The bridge does not check
// what clients publish against T; a topic bound to a Go type refuses
// values that do not decode into it ("type_mismatch").
func ExposeTyped[T any](pattern string, actions ...Action) Option {
	return exposeOpt{e: exposure{pattern: pattern, actions: actions, typ: reflect.TypeFor[T]()}}
}

// TypeScriptOptions passes opts to the generator of the bridge's
// TypeScript declarations ([Bridge.TypeScript]): doc comments parsed from
// the host's source ([tsgen.WithDocs]) and the TypeScript of types with
// their own JSON encoding ([tsgen.Override]). May be given several times.
func TypeScriptOptions(opts ...tsgen.Option) Option {
	return optFunc(func(c *config) { c.tsOpts = append(c.tsOpts, opts...) })
}

// ExposeRooms opens the rooms matching pattern to clients for [Join] and
// [Presence]. Rooms named in a publish's "to" and "except" must be exposed
// for some action. Rooms are closed unless exposed.
func ExposeRooms(pattern string, actions ...Action) Option {
	return exposeOpt{rooms: true, e: exposure{pattern: pattern, actions: actions}}
}

// AllowOrigins sets the origins (scheme://host[:port]) whose pages may
// connect; "*" allows any. By default only the same origin as the request's
// Host is allowed (and requests without an Origin header, which browsers
// always send).
func AllowOrigins(origins ...string) Option { return originsOpt{origins} }

// SessionKey makes the bridge's resume tokens from key instead of a random
// key of its own. The bridges of a cluster (package cluster), given the
// same secret key, honour each other's tokens: a client whose node went
// away presents its token to another node and keeps its session id — its
// member id in rooms and presence — with its identity. That node has none
// of the session's state, so the welcome says "resumed":false and the
// client makes its rooms and subscriptions again from the positions it
// handled (the clients do so by themselves). Keep the key secret: with it,
// anyone can make tokens. At least 16 bytes.
func SessionKey(key []byte) Option {
	return optFunc(func(c *config) { c.sessionKey = append([]byte(nil), key...) })
}

// ResumeWindow sets how long a session outlives its connection, waiting
// for the client to resume it. Default 2 minutes; 0 ends sessions with
// their connection.
func ResumeWindow(d time.Duration) Option { return durOpt{durResume, d} }

// HandshakeTimeout sets how long a new connection has to send its hello.
// Default 10 seconds.
func HandshakeTimeout(d time.Duration) Option { return durOpt{durHandshake, d} }

// Heartbeat sets the interval of WebSocket pings (and the interval clients
// are told to ping at); a connection that answers no ping for 2×d+5s is
// closed. Default 25 seconds.
func Heartbeat(d time.Duration) Option { return durOpt{durHeartbeat, d} }

// WriteTimeout sets how long one write to a connection may take; a client
// that does not read for that long is disconnected as slow. Default 10
// seconds.
func WriteTimeout(d time.Duration) Option { return durOpt{durWrite, d} }

// PublishTimeout bounds how long a client's publish may wait for
// subscribers with room. Default 10 seconds.
func PublishTimeout(d time.Duration) Option { return durOpt{durPublish, d} }

// RequestTimeout caps how long a client's request may wait for its reply.
// Default 30 seconds.
func RequestTimeout(d time.Duration) Option { return durOpt{durRequest, d} }

// FrameLimit sets the largest frame a client may send, in bytes; a larger
// one is refused with "too_large" and the connection stays. Default 64 KiB.
func FrameLimit(n int) Option { return intOpt{intFrame, n} }

// MessageLimit sets the largest WebSocket message (a frame or an array of
// frames) a client may send; a larger one closes the connection with 1009.
// Default 256 KiB.
func MessageLimit(n int) Option { return intOpt{intMessage, n} }

// MaxSubscriptions sets how many subscriptions one session may hold.
// Default 64.
func MaxSubscriptions(n int) Option { return intOpt{intSubs, n} }

// RateLimit sets how many frames per second a connection may send, with
// bursts of burst frames. Frames beyond it are refused with
// "rate_limited" (acks and nacks of deliveries are not counted). Default
// 1000 per second, burst 2000: enough for a client that publishes with
// acknowledgements back to back over any real network. Bad frames are
// bounded apart from it ([StrikeLimit]); lower it where each good frame
// is expensive, such as clients that may publish to persisted topics.
func RateLimit(perSecond float64, burst int) Option { return rateOpt{false, perSecond, burst} }

// StrikeLimit sets how many refused frames a connection may send: burst
// at once, perSecond forgiven every second. Beyond it the connection is
// closed with 4000. Default 1 per second, burst 20.
func StrikeLimit(perSecond float64, burst int) Option { return rateOpt{true, perSecond, burst} }

// OutboundLimit sets how many bytes may wait to be written to one
// connection; a client that lets more pile up is disconnected as slow
// (close code 4008) and resumes without loss. Default 1 MiB.
func OutboundLimit(n int) Option { return intOpt{intOutbound, n} }

// MaxUnacked caps the "max_inflight" a client may ask for on a
// subscription. Default 4096.
func MaxUnacked(n int) Option { return intOpt{intInflight, n} }

// MaxRequests sets how many client requests of one session may be in
// progress at once. Default 16.
func MaxRequests(n int) Option { return intOpt{intRequests, n} }

// MaxRooms sets how many rooms one session may be in, and how many rooms'
// presence it may watch. Default 64.
func MaxRooms(n int) Option { return intOpt{intRooms, n} }

// MaxConnections sets how many connections one identity ([Identity].ID, as
// the hooks returned it) may have open at once. A hello beyond it is
// refused with the code "limit" and the connection closed with 4006. A
// connection that resumes a session whose old connection is still open is
// let in: it replaces that one. Anonymous clients (ID "") are not counted,
// since nothing tells them apart. Default 0: no limit.
func MaxConnections(n int) Option { return intOpt{intConns, n} }
