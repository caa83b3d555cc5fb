package bridge

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
)

func (c *conn) request(s *session, f *wire.Frame) {
	b := c.b
	if f.ID == "" {
		c.fail("", wire.CodeBadFrame, `request needs "id"`)
		return
	}
	if err := checkTopic(f.Topic); err != nil {
		c.fail(f.ID, wire.CodeInvalidName, errText(err))
		return
	}
	if err := c.allowed(s, Request, f.Topic); err != nil {
		c.fail(f.ID, wire.CodeForbidden, errText(err))
		return
	}
	timeout := b.cfg.requestTimeout
	if f.Timeout > 0 {
		timeout = millis(f.Timeout, 0, timeout)
	}
	data := f.Data
	if len(data) == 0 {
		data = []byte("null")
	}
	s.mu.Lock()
	full := s.nreqs >= b.cfg.maxRequests
	if !full {
		s.nreqs++
	}
	s.mu.Unlock()
	if full {
		c.fail(f.ID, wire.CodeLimit, fmt.Sprintf("at most %d requests in progress", b.cfg.maxRequests))
		return
	}
	if !b.enter(&b.reqs) {
		s.mu.Lock()
		s.nreqs--
		s.mu.Unlock()
		c.fail(f.ID, wire.CodeUnavailable, "bridge closing")
		return
	}
	id, topic := f.ID, b.busName(f.Topic)
	go func() {
		defer b.reqs.Done()
		ctx, cancel := context.WithTimeout(b.ctx, timeout)
		resp, err := b.bus.RequestRaw(ctx, topic, data)
		cancel()
		s.mu.Lock()
		s.nreqs--
		s.mu.Unlock()
		if err != nil {
			c.fail(id, codeOf(err, wire.CodeFailed), errText(err))
			return
		}
		c.reply(&wire.Frame{Op: wire.OpReply, ID: id, Data: resp})
	}()
}

// replied takes a client's answer to a server request.
func (c *conn) replied(s *session, f *wire.Frame) {
	s.mu.Lock()
	ch := s.sreqs[f.ID]
	delete(s.sreqs, f.ID)
	s.mu.Unlock()
	if ch == nil {
		c.fail(f.ID, wire.CodeNotFound, fmt.Sprintf("no server request %q", f.ID))
		return
	}
	ch <- f
}

// Request sends a request to the client of session sessionID (its member
// id) and waits for its reply: the client's handler for topic answers. data
// must be JSON. It returns [ErrNoSession] or [ErrNotConnected] when the
// client cannot be asked, a *[ReplyError] when the client answered with a
// failure, and ctx.Err() when ctx ends first.
func (b *Bridge) Request(ctx context.Context, sessionID, topic string, data []byte) ([]byte, error) {
	if b.closing() {
		return nil, ErrClosed
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("%w: request data is not JSON", bus.ErrTypeMismatch)
	}
	s := b.session(sessionID)
	if s == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoSession, sessionID)
	}
	id := fmt.Sprintf("s%d", b.reqSeq.Add(1))
	frame, err := wire.Encode(&wire.Frame{Op: wire.OpRequest, ID: id, Topic: topic, Data: data})
	if err != nil {
		return nil, err
	}
	ch := make(chan *wire.Frame, 1)
	s.mu.Lock()
	switch {
	case s.ended:
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrNoSession, sessionID)
	case s.c == nil:
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrNotConnected, sessionID)
	}
	if s.sreqs == nil {
		s.sreqs = make(map[string]chan *wire.Frame)
	}
	s.sreqs[id] = ch
	sent := s.c.sendFrame(frame)
	if !sent {
		delete(s.sreqs, id)
	}
	s.mu.Unlock()
	if !sent {
		return nil, fmt.Errorf("%w: %q", ErrNotConnected, sessionID)
	}
	select {
	case f, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrNotConnected, sessionID)
		}
		if f.Code != "" {
			return nil, &ReplyError{Code: f.Code, Message: f.Message}
		}
		if len(f.Data) == 0 {
			return []byte("null"), nil
		}
		return f.Data, nil
	case <-ctx.Done():
	case <-b.ctx.Done():
	}
	s.mu.Lock()
	delete(s.sreqs, id)
	s.mu.Unlock()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, ErrClosed
}
