package bridge

import (
	"context"
	"fmt"
	"strings"

	"github.com/courierbus/courier/bridge/internal/wire"
	"github.com/courierbus/courier/bus"
)

func (c *conn) publish(s *session, f *wire.Frame) {
	b := c.b
	if err := checkTopic(f.Topic); err != nil {
		c.fail(f.ID, wire.CodeInvalidName, errText(err))
		return
	}
	if len(f.Data) == 0 {
		c.fail(f.ID, wire.CodeBadFrame, `publish needs "data"`)
		return
	}
	if len(f.PID) > maxPIDLen {
		c.fail(f.ID, wire.CodeBadFrame, fmt.Sprintf("pid of %d bytes, limit %d", len(f.PID), maxPIDLen))
		return
	}
	if err := c.allowed(s, Publish, f.Topic); err != nil {
		c.fail(f.ID, wire.CodeForbidden, errText(err))
		return
	}
	opts := make([]bus.PublishOption, 0, 6)
	for _, list := range [][]string{f.To, f.Except} {
		for _, r := range list {
			if err := checkTopic(r); err != nil {
				c.fail(f.ID, wire.CodeInvalidName, fmt.Sprintf("room %q", r))
				return
			}
			if !b.roomExposed(r) {
				c.fail(f.ID, wire.CodeForbidden, fmt.Sprintf("room %q is not exposed to clients", r))
				return
			}
		}
	}
	if len(f.To) > 0 {
		opts = append(opts, bus.To(b.busNames(f.To)...))
	}
	if len(f.Except) > 0 {
		opts = append(opts, bus.Except(b.busNames(f.Except)...))
	}
	if f.ExceptSelf {
		opts = append(opts, bus.ExceptMember(s.id))
	}
	if f.Volatile {
		opts = append(opts, bus.Volatile())
	}
	if f.PID != "" {
		scope := "s:" + s.id
		if s.ident.ID != "" {
			scope = "u:" + s.ident.ID
		}
		opts = append(opts, bus.PublisherID(scope+":"+f.PID))
	}
	opts = append(opts, bus.Headers(publisherHeaders(s, f.Headers)))
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.publishTimeout)
	topic := b.busName(f.Topic)
	seq, err := b.bus.PublishRaw(ctx, topic, f.Data, opts...)
	cancel()
	if err != nil {
		c.fail(f.ID, codeOf(err, wire.CodeInternal), errText(err))
		return
	}
	if f.ID == "" {
		return
	}
	ans := wire.Frame{Op: wire.OpPuback, ID: f.ID, Seq: seq}
	if seq != 0 {
		if pos, err := b.bus.Position(b.ctx, topic); err == nil {
			ans.Epoch = wire.Epoch(pos.Epoch)
		}
	}
	c.reply(&ans)
}

// publisherHeaders returns a client's headers with the server's own, which
// say who published: the client cannot set or forge them.
func publisherHeaders(s *session, client map[string]string) map[string]string {
	h := make(map[string]string, len(client)+2)
	for k, v := range client {
		if len(k) < len(wire.HeaderPrefix) || !strings.EqualFold(k[:len(wire.HeaderPrefix)], wire.HeaderPrefix) {
			h[k] = v
		}
	}
	h[wire.HeaderSession] = s.id
	if s.ident.ID != "" {
		h[wire.HeaderUser] = s.ident.ID
	}
	return h
}

func (b *Bridge) busNames(names []string) []string {
	if b.ns == "" {
		return names
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = b.ns + n
	}
	return out
}
