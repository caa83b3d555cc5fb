package client

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// Option configures [Dial].
type Option interface{ applyClient(*config) }

type config struct {
	header     http.Header
	auth       any
	dialer     *websocket.Dialer
	minBackoff time.Duration
	maxBackoff time.Duration
	onEvent    func(Event)
	logger     *slog.Logger
	handshake  time.Duration
	fallback   []string
}

type optFunc func(*config)

func (f optFunc) applyClient(c *config) { f(c) }

// Header sends h with every WebSocket handshake (credentials for the
// bridge's Authenticate hook, an Origin).
func Header(h http.Header) Option { return optFunc(func(c *config) { c.header = h.Clone() }) }

// Auth sends v, encoded as JSON, as the "auth" payload of every hello
// (for the bridge's HelloAuth hook).
func Auth(v any) Option { return optFunc(func(c *config) { c.auth = v }) }

// WithDialer dials with d. Default: a gorilla websocket.Dialer with a
// 10-second handshake timeout.
func WithDialer(d *websocket.Dialer) Option { return optFunc(func(c *config) { c.dialer = d }) }

// ReconnectBackoff sets the reconnect backoff: from min doubling to max, each
// wait a random value between half and all of it. Default 100ms to 10s.
func ReconnectBackoff(min, max time.Duration) Option {
	return optFunc(func(c *config) { c.minBackoff, c.maxBackoff = min, max })
}

// Fallback gives more bridges to connect to, for a cluster of nodes
// sharing a bus (package cluster): when a connection cannot be made, the
// client tries the next URL, round robin, starting with Dial's. A session
// lives in one node, so on another node the welcome says it was not
// resumed, and the client restores its rooms and subscriptions from the
// last positions it handled; positions mean the same on every node, so
// nothing is missed on topics subscribed by name.
func Fallback(urls ...string) Option {
	return optFunc(func(c *config) { c.fallback = append(c.fallback, urls...) })
}

// OnEvent calls f for every [Event], one at a time, on a goroutine of the
// client's. By default events are dropped.
func OnEvent(f func(Event)) Option { return optFunc(func(c *config) { c.onEvent = f }) }

// WithLogger sends the client's logs to l. By default they are discarded.
func WithLogger(l *slog.Logger) Option { return optFunc(func(c *config) { c.logger = l }) }

// SubscribeOption configures [Client.Subscribe].
type SubscribeOption interface{ applySub(*subConfig) }

type subConfig struct {
	volatile    bool
	maxInflight int
	ackWait     time.Duration
	start       string
	seq         uint64
	epoch       uint64
}

type subFunc func(*subConfig)

func (f subFunc) applySub(c *subConfig) { f(c) }

// DeliveryOption is accepted by both Subscribe and Publish.
type DeliveryOption interface {
	SubscribeOption
	PublishOption
}

// Volatile asks for at-most-once delivery: no acks, nothing kept for the
// client while it is disconnected.
func Volatile() DeliveryOption { return volatileOpt{} }

type volatileOpt struct{}

func (volatileOpt) applySub(c *subConfig) { c.volatile = true }
func (volatileOpt) applyPub(c *pubConfig) { c.volatile = true }

// MaxUnacked sets how many deliveries the server sends before waiting for
// acks. Default: the server's (256). 1 keeps strict order even when the
// handler fails.
func MaxUnacked(n int) SubscribeOption { return subFunc(func(c *subConfig) { c.maxInflight = n }) }

// AckWait sets how long the server waits for an ack before sending a
// delivery again. Default: the server's (30s).
func AckWait(d time.Duration) SubscribeOption { return subFunc(func(c *subConfig) { c.ackWait = d }) }

// StartFirst starts with the oldest message the topic's history holds.
func StartFirst() SubscribeOption { return subFunc(func(c *subConfig) { c.start = "first" }) }

// StartSeq starts with sequence number seq.
func StartSeq(seq uint64) SubscribeOption {
	return subFunc(func(c *subConfig) { c.start, c.seq = "seq", seq })
}

// StartAfter starts after position (epoch, seq), e.g. the last message a
// previous run handled.
func StartAfter(epoch, seq uint64) SubscribeOption {
	return subFunc(func(c *subConfig) { c.start, c.epoch, c.seq = "after", epoch, seq })
}

// PublishOption configures [Client.Publish].
type PublishOption interface{ applyPub(*pubConfig) }

type pubConfig struct {
	ack        bool
	volatile   bool
	to, except []string
	exceptSelf bool
	headers    map[string]string
	pid        string
}

type pubFunc func(*pubConfig)

func (f pubFunc) applyPub(c *pubConfig) { f(c) }

// Ack makes Publish wait for the server's confirmation and return the
// message's sequence number. The publish carries a publisher id, so that
// when the connection drops before the confirmation, Publish sends it again
// after the reconnect without publishing it twice.
func Ack() PublishOption { return pubFunc(func(c *pubConfig) { c.ack = true }) }

// To addresses the message to the members of rooms.
func To(rooms ...string) PublishOption {
	return pubFunc(func(c *pubConfig) { c.to = append(c.to, rooms...) })
}

// Except keeps the message from the members of rooms.
func Except(rooms ...string) PublishOption {
	return pubFunc(func(c *pubConfig) { c.except = append(c.except, rooms...) })
}

// ExceptSelf keeps the message from this client's own subscriptions.
func ExceptSelf() PublishOption { return pubFunc(func(c *pubConfig) { c.exceptSelf = true }) }

// Headers attaches string headers to the message.
func Headers(h map[string]string) PublishOption {
	return pubFunc(func(c *pubConfig) { c.headers = h })
}

// PublisherID sets the publish's de-duplication id (Ack sets one).
func PublisherID(id string) PublishOption { return pubFunc(func(c *pubConfig) { c.pid = id }) }
