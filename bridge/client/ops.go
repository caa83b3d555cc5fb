package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/courierbus/courier/bridge/internal/wire"
)

// encodeData turns a value into the JSON of a frame's data: []byte and
// json.RawMessage are taken as they are (and must be JSON).
func encodeData(v any) (json.RawMessage, error) {
	switch d := v.(type) {
	case json.RawMessage:
		if !json.Valid(d) {
			return nil, errors.New("client: data is not valid JSON")
		}
		return d, nil
	case []byte:
		if !json.Valid(d) {
			return nil, errors.New("client: data is not valid JSON")
		}
		return d, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("client: encode data: %w", err)
	}
	return b, nil
}

// Publish publishes data (encoded as JSON) to topic. Without [Ack] it
// returns once the frame is queued (ErrNotConnected while reconnecting).
// With Ack it waits for the server's confirmation, across reconnects
// until ctx ends, and returns the message's sequence number (0 for a
// volatile publish).
func (c *Client) Publish(ctx context.Context, topic string, data any, opts ...PublishOption) (uint64, error) {
	var cfg pubConfig
	for _, o := range opts {
		o.applyPub(&cfg)
	}
	raw, err := encodeData(data)
	if err != nil {
		return 0, err
	}
	f := wire.Frame{
		Op: wire.OpPublish, Topic: topic, Data: raw, To: cfg.to, Except: cfg.except,
		ExceptSelf: cfg.exceptSelf, Volatile: cfg.volatile, Headers: cfg.headers, PID: cfg.pid,
	}
	if !cfg.ack {
		c.mu.Lock()
		l, closed := c.cur, c.closed
		c.mu.Unlock()
		switch {
		case closed:
			return 0, ErrClosed
		case l == nil || !c.send(l, &f):
			return 0, ErrNotConnected
		}
		return 0, nil
	}
	if f.PID == "" {
		c.mu.Lock()
		c.nextID++
		f.PID = c.instance + "-" + strconv.FormatUint(c.nextID, 10)
		c.mu.Unlock()
	}
	for {
		a, err := c.call(ctx, &f)
		if err == ErrDisconnected {
			continue // the publisher id makes sending it again safe
		}
		if err != nil {
			return 0, err
		}
		return a.Seq, nil
	}
}

// Request sends data to the server endpoint topic and waits for the reply.
// ctx's deadline is passed on to the server. It fails with ErrNoHandler,
// ErrFailed (the handler's error), ErrTimeout, ErrForbidden..., and with
// ErrDisconnected when the connection drops first (the request may or may
// not have been handled).
func (c *Client) Request(ctx context.Context, topic string, data any) (json.RawMessage, error) {
	raw, err := encodeData(data)
	if err != nil {
		return nil, err
	}
	f := wire.Frame{Op: wire.OpRequest, Topic: topic, Data: raw}
	if d, ok := ctx.Deadline(); ok {
		f.Timeout = max(time.Until(d).Milliseconds(), 1)
	}
	a, err := c.call(ctx, &f)
	if err != nil {
		return nil, err
	}
	if len(a.Data) == 0 {
		return json.RawMessage("null"), nil // absent: null
	}
	return a.Data, nil
}

// Handle serves server requests for topic (see the bridge's Request) with
// h, one goroutine per request. Handle again to replace h; nil removes it.
func (c *Client) Handle(topic string, h RequestHandler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h == nil {
		delete(c.handlers, topic)
		return
	}
	c.handlers[topic] = h
}

// serve answers a server request, from the link's reader.
func (c *Client) serve(l *link, f *wire.Frame) {
	c.mu.Lock()
	h := c.handlers[f.Topic]
	closed := c.closed
	if !closed {
		c.wg.Add(1)
	}
	c.mu.Unlock()
	if closed {
		return
	}
	id, topic, data := f.ID, f.Topic, f.Data // f is the reader's, reused for the next frame
	go func() {
		defer c.wg.Done()
		r := wire.Frame{Op: wire.OpReply, ID: id}
		if len(data) == 0 {
			data = json.RawMessage("null") // absent: null
		}
		if h == nil {
			r.Code, r.Message = "no_handler", fmt.Sprintf("no handler for %q", topic)
		} else if v, err := safeServe(c.ctx, h, data); err != nil {
			r.Code, r.Message = "failed", err.Error()
		} else if r.Data, err = encodeData(v); err != nil {
			r.Code, r.Message = "failed", err.Error()
		}
		c.send(l, &r)
	}()
}

func safeServe(ctx context.Context, h RequestHandler, data json.RawMessage) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return h(ctx, data)
}

// Join adds this client's session to rooms. The client joins them again
// if it has to start a new session.
func (c *Client) Join(ctx context.Context, rooms ...string) error {
	if _, err := c.call(ctx, &wire.Frame{Op: wire.OpJoin, Rooms: rooms}); err != nil {
		return err
	}
	c.mu.Lock()
	for _, r := range rooms {
		c.rooms[r] = struct{}{}
	}
	c.mu.Unlock()
	return nil
}

// Leave removes this client's session from rooms.
func (c *Client) Leave(ctx context.Context, rooms ...string) error {
	c.mu.Lock()
	for _, r := range rooms {
		delete(c.rooms, r)
	}
	c.mu.Unlock()
	_, err := c.call(ctx, &wire.Frame{Op: wire.OpLeave, Rooms: rooms})
	return err
}

// Member is a member of a room.
type Member struct {
	Member string // member id: a client's session id
	User   string // the identity the server authenticated, or ""
	// Away is true while the member's connection is down and its session
	// waits for it to resume (for at most the bridge's resume window).
	Away bool
}

// PresenceEvent is a change in a watched room: a member joined (Joined),
// left (not Joined), lost its connection (Joined and Away: its session
// waits for a resume, and the member leaves if it does not come back) or
// came back (Joined, not Away).
type PresenceEvent struct {
	Room   string
	Member string
	User   string
	Joined bool
	Away   bool
}

// Presence lists the members of room.
func (c *Client) Presence(ctx context.Context, room string) ([]Member, error) {
	return c.presence(ctx, room, nil)
}

// WatchPresence lists the members of room and then calls f for every
// change in it (see [PresenceEvent]), on the connection's reader (f must
// not block), until UnwatchPresence or Close.
func (c *Client) WatchPresence(ctx context.Context, room string, f func(PresenceEvent)) ([]Member, error) {
	c.mu.Lock()
	c.watches[room] = f
	c.mu.Unlock()
	ms, err := c.presence(ctx, room, wire.Bool(true))
	if err != nil {
		c.mu.Lock()
		delete(c.watches, room)
		c.mu.Unlock()
	}
	return ms, err
}

// UnwatchPresence stops the events of WatchPresence.
func (c *Client) UnwatchPresence(ctx context.Context, room string) error {
	c.mu.Lock()
	delete(c.watches, room)
	c.mu.Unlock()
	_, err := c.presence(ctx, room, wire.Bool(false))
	return err
}

func (c *Client) presence(ctx context.Context, room string, watch *bool) ([]Member, error) {
	a, err := c.call(ctx, &wire.Frame{Op: wire.OpPresence, Room: room, Watch: watch})
	if err != nil {
		return nil, err
	}
	out := make([]Member, len(a.Members))
	for i, m := range a.Members {
		out[i] = Member{Member: m.Member, User: m.User, Away: m.Away}
	}
	return out, nil
}

// Ping asks the server for a pong and waits for it.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.call(ctx, &wire.Frame{Op: wire.OpPing})
	return err
}
