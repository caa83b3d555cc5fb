package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/courierbus/courier/bridge/internal/wire"
)

// link is one WebSocket connection.
type link struct {
	ws   *websocket.Conn
	out  chan []byte
	done chan struct{} // closed when the link ends
	once sync.Once
	err  error
	wg   sync.WaitGroup // reader and writer
	hb   time.Duration
	pace *pacer // nil when the server announced no frame rate
}

func (l *link) end(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.done)
		l.ws.Close()
	})
}

// send queues an encoded frame; false when the link has ended.
func (l *link) send(frame []byte) bool {
	select {
	case l.out <- frame:
		return true
	case <-l.done:
		return false
	}
}

// closeAfterQueue has the writer send what is queued and then a close
// frame; it waits up to d for the server to close the connection.
func (l *link) closeAfterQueue(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case l.out <- nil: // the writer's cue to close
	case <-l.done:
		return
	case <-t.C:
	}
	select {
	case <-l.done:
	case <-t.C:
		l.end(ErrClosed)
	}
}

// connect dials and says hello; it returns the link, the welcome and any
// frames that came in the same message after it.
func (c *Client) connect(ctx context.Context) (*link, *wire.Frame, []wire.Frame, error) {
	l, w, rest, err := c.connectTo(ctx, c.urls[c.urlNext])
	if err != nil {
		// The next attempt goes to the next bridge of a cluster.
		c.urlNext = (c.urlNext + 1) % len(c.urls)
	}
	return l, w, rest, err
}

func (c *Client) connectTo(ctx context.Context, url string) (*link, *wire.Frame, []wire.Frame, error) {
	ws, resp, err := c.cfg.dialer.DialContext(ctx, url, c.cfg.header)
	if err != nil {
		if resp != nil {
			return nil, nil, nil, fmt.Errorf("client: dial %s: %w (HTTP %d)", url, err, resp.StatusCode)
		}
		return nil, nil, nil, fmt.Errorf("client: dial %s: %w", url, err)
	}
	hello := wire.Frame{Op: wire.OpHello, V: wire.Version, ID: "hello"}
	c.mu.Lock()
	hello.Resume = c.token
	c.mu.Unlock()
	if c.cfg.auth != nil {
		if hello.Auth, err = json.Marshal(c.cfg.auth); err != nil {
			ws.Close()
			return nil, nil, nil, fmt.Errorf("client: encode auth: %w", err)
		}
	}
	frame, _ := wire.Encode(&hello)
	deadline := time.Now().Add(c.cfg.handshake)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ws.SetWriteDeadline(deadline)
	if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		ws.Close()
		return nil, nil, nil, fmt.Errorf("client: hello: %w", err)
	}
	ws.SetWriteDeadline(time.Time{})
	ws.SetReadDeadline(deadline)
	var d decoder
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			ws.Close()
			return nil, nil, nil, fmt.Errorf("client: waiting for welcome: %w", err)
		}
		frames, err := d.decode(msg)
		if err != nil {
			continue
		}
		for i := range frames {
			f := &frames[i]
			switch f.Op {
			case wire.OpWelcome:
				ws.SetReadDeadline(time.Time{})
				l := &link{ws: ws, out: make(chan []byte, 1024), done: make(chan struct{}),
					hb: time.Duration(f.Heartbeat) * time.Millisecond, pace: newPacer(f.Limits)}
				if l.hb <= 0 {
					l.hb = 25 * time.Second
				}
				return l, f, frames[i+1:], nil
			case wire.OpError:
				ws.Close()
				return nil, nil, nil, &Error{Code: f.Code, Message: f.Message}
			}
		}
	}
}

// decoder decodes the messages of one connection, on its reader. Message
// frames, nearly all of what a client reads, go through the wire scanner;
// their Data are slices of the WebSocket message (gorilla/websocket reads
// every message into a new slice).
type decoder struct {
	wire.Decoder
	frames []wire.Frame // reused: valid until the next decode
}

// decode returns the frames of a WebSocket message, leaving out those that
// do not decode. They are valid until the next call: dispatch keeps
// nothing of them.
func (d *decoder) decode(msg []byte) ([]wire.Frame, error) {
	var err error
	d.frames, err = d.Decode(msg, d.frames)
	return d.frames, err
}

// run is the client's supervisor: it serves one link at a time and
// reconnects when it drops.
func (c *Client) run(l *link) {
	for {
		select {
		case <-l.done:
		case <-c.ctx.Done():
			l.end(ErrClosed)
		}
		l.wg.Wait()
		terminal := c.stop(l)
		if c.ctx.Err() != nil {
			return
		}
		c.events.push(Event{Type: Disconnected, Err: l.err})
		if terminal {
			c.mu.Lock()
			c.stopErr = l.err
			c.mu.Unlock()
			c.events.push(Event{Type: Stopped, Err: l.err})
			<-c.ctx.Done()
			return
		}
		l2, w, rest, ok := c.reconnect()
		if !ok {
			return
		}
		l = l2
		c.start(l, w, rest, false)
	}
}

// reconnect dials until it succeeds or the client closes.
func (c *Client) reconnect() (*link, *wire.Frame, []wire.Frame, bool) {
	d := c.cfg.minBackoff
	for {
		wait := d/2 + mrand.N(d/2+1)
		t := time.NewTimer(wait)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return nil, nil, nil, false
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.handshake)
		l, w, rest, err := c.connect(ctx)
		cancel()
		if err == nil {
			return l, w, rest, true
		}
		c.log.Debug("client: reconnect failed", "err", err)
		d = min(2*d, c.cfg.maxBackoff)
	}
}

// stop tears a link down; it reports whether its close code forbids
// reconnecting.
func (c *Client) stop(l *link) bool {
	c.mu.Lock()
	if c.cur == l {
		c.cur = nil
		c.up = make(chan struct{})
	}
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
	c.mu.Unlock()
	// Every other close code reconnects and resumes: 1001 (going away),
	// 1011, 4002, 4008 (slow), 4009 (the host disconnected the client).
	var ce *websocket.CloseError
	if errors.As(l.err, &ce) {
		switch ce.Code {
		case wire.CloseUnauthorized, wire.CloseReplaced, wire.CloseVersion, wire.CloseBadFrames:
			return true
		}
	}
	return false
}

// start makes l the current link after its welcome: it starts the link's
// reader and writer and brings the session up to date.
func (c *Client) start(l *link, w *wire.Frame, rest []wire.Frame, first bool) {
	resumed := w.Resumed != nil && *w.Resumed
	c.mu.Lock()
	c.cur = l
	c.session, c.token, c.heartbeat = w.Session, w.Resume, l.hb
	close(c.up)
	c.mu.Unlock()
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		c.writeLoop(l)
	}()
	for i := range rest {
		c.dispatch(l, &rest[i])
	}
	go func() {
		defer l.wg.Done()
		c.readLoop(l)
	}()
	recovered := c.restore(l, w, resumed, first)
	c.events.push(Event{Type: Connected, Session: w.Session, Resumed: resumed, Recovered: recovered})
}

// restore brings the server's session in line with the client's
// subscriptions, rooms and presence watches after a (re)connect.
func (c *Client) restore(l *link, w *wire.Frame, resumed, first bool) map[string]bool {
	recovered := make(map[string]bool)
	server := make(map[string]bool)
	if resumed {
		for _, s := range w.Subs {
			server[s.Sub] = true
			recovered[s.Sub] = s.Recovered
		}
	}
	c.mu.Lock()
	var subs []*Subscription
	for id, s := range c.subs {
		if !server[id] {
			subs = append(subs, s)
		}
	}
	var drop []string
	for id := range server {
		if c.subs[id] == nil {
			drop = append(drop, id)
		}
	}
	var rooms []string
	for r := range c.rooms {
		if !slices.Contains(w.Rooms, r) {
			rooms = append(rooms, r)
		}
	}
	var watches []string
	if !resumed {
		for r := range c.watches {
			watches = append(watches, r)
		}
	}
	c.mu.Unlock()
	if first && !resumed {
		return recovered
	}
	// Rooms first: a host may let only a room's members subscribe to its
	// topics, and the server handles the frames in order.
	if len(rooms) > 0 {
		c.send(l, &wire.Frame{Op: wire.OpJoin, Rooms: rooms})
	}
	for _, s := range subs {
		f := s.frame(true)
		c.send(l, &f)
		if f.Start == wire.StartAfter || f.Start == wire.StartSeq {
			recovered[s.id] = false // known from the answer only; see Resync events
		}
	}
	for _, id := range drop {
		c.send(l, &wire.Frame{Op: wire.OpUnsubscribe, Sub: id})
	}
	for _, r := range watches {
		c.send(l, &wire.Frame{Op: wire.OpPresence, Room: r, Watch: wire.Bool(true)})
	}
	return recovered
}

// send encodes and queues a frame on l, within the server's frame rate.
func (c *Client) send(l *link, f *wire.Frame) bool {
	if l.pace != nil && f.Op != wire.OpAck && !l.pace.wait(l.done) {
		return false
	}
	frame, err := wire.Encode(f)
	if err != nil {
		return false
	}
	return l.send(frame)
}

func (c *Client) writeLoop(l *link) {
	t := time.NewTicker(l.hb)
	defer t.Stop()
	var batch []byte
	sent := false
	for {
		var frame []byte
		select {
		case frame = <-l.out:
			if frame == nil {
				l.ws.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
				return
			}
		case <-t.C:
			if !sent {
				frame, _ = wire.Encode(&wire.Frame{Op: wire.OpPing})
			}
			sent = false
			if frame == nil {
				continue
			}
		case <-l.done:
			return
		}
		batch = append(batch[:0], '[')
		batch = append(batch, frame...)
		n, bye := 1, false
	more:
		for n < 256 && len(batch) < 32<<10 {
			select {
			case f := <-l.out:
				if f == nil {
					bye = true // after this batch
					break more
				}
				batch = append(batch, ',')
				batch = append(batch, f...)
				n++
			default:
				break more
			}
		}
		msg := batch[1:]
		if n > 1 {
			batch = append(batch, ']')
			msg = batch
		}
		l.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := l.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			l.end(err)
			return
		}
		sent = true
		if bye {
			l.ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
			return
		}
	}
}

func (c *Client) readLoop(l *link) {
	dead := 2*l.hb + 5*time.Second
	l.ws.SetReadDeadline(time.Now().Add(dead))
	var d decoder
	l.ws.SetPingHandler(func(data string) error {
		l.ws.SetReadDeadline(time.Now().Add(dead))
		err := l.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			return err
		}
		return nil
	})
	for {
		_, msg, err := l.ws.ReadMessage()
		if err != nil {
			l.end(err)
			return
		}
		l.ws.SetReadDeadline(time.Now().Add(dead))
		frames, err := d.decode(msg)
		if err != nil {
			c.log.Warn("client: undecodable message from server", "err", err)
			continue
		}
		for i := range frames {
			c.dispatch(l, &frames[i])
		}
	}
}

// dispatch handles one frame from the server, on the link's reader.
func (c *Client) dispatch(l *link, f *wire.Frame) {
	switch f.Op {
	case wire.OpMessage:
		c.mu.Lock()
		s := c.subs[f.Sub]
		session := c.session // l's: the next link starts after l's reader ended
		c.mu.Unlock()
		if s != nil {
			s.push(session, f)
		} else if f.N != 0 {
			// Not ours (any more): settle it so the server stops sending it.
			c.send(l, &wire.Frame{Op: wire.OpAck, Sub: f.Sub, N: f.N})
		}
		return
	case wire.OpResync:
		c.mu.Lock()
		s := c.subs[f.Sub]
		session := c.session
		c.mu.Unlock()
		if s != nil {
			s.push(session, f)
		}
		c.events.push(Event{Type: Resync, Sub: f.Sub, Topic: f.Topic, Seq: f.Seq})
		return
	case wire.OpRequest:
		c.serve(l, f)
		return
	case wire.OpPresenceEvent:
		c.mu.Lock()
		fn := c.watches[f.Room]
		c.mu.Unlock()
		if fn != nil {
			fn(PresenceEvent{Room: f.Room, Member: f.Member, User: f.User,
				Joined: f.Joined != nil && *f.Joined, Away: f.Away != nil && *f.Away})
		}
		return
	}
	if f.ID != "" {
		c.mu.Lock()
		ch := c.pending[f.ID]
		delete(c.pending, f.ID)
		c.mu.Unlock()
		if ch != nil {
			a := *f // f is the reader's, reused for the next frame
			ch <- &a
			return
		}
	}
	if f.Op == wire.OpError {
		c.events.push(Event{Type: ServerError, Err: &Error{Code: f.Code, Message: f.Message}, Sub: f.Sub})
	}
}
