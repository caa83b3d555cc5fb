package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ---- queue groups

const (
	hGroup   = "Courier-Group"
	hPattern = "Courier-Pattern"
	hJoined  = "Courier-Joined"
	hBy      = "Courier-By"
)

// ShareGroup implements [bus.GroupBroker].
func (n *Node) ShareGroup(ctx context.Context, group, pattern string, joined bool) error {
	n.mu.Lock()
	if n.mine == nil {
		n.mine = make(map[[2]string]bool)
	}
	if joined {
		n.mine[[2]string{group, pattern}] = true
	} else {
		delete(n.mine, [2]string{group, pattern})
	}
	n.mu.Unlock()
	return n.publishGroup(ctx, n.cfg.Name, group, pattern, joined)
}

func (n *Node) publishGroup(ctx context.Context, node, group, pattern string, joined bool) error {
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	m := nats.NewMsg(n.gsubj())
	m.Header.Set(hNode, node)
	m.Header.Set(hBy, n.cfg.Name)
	m.Header.Set(hGroup, group)
	m.Header.Set(hPattern, pattern)
	if joined {
		m.Header.Set(hJoined, "1")
	}
	// Like every message Courier puts in the stream, a registration names
	// the last one on its subject. Registrations need no such order, but a
	// JetStream server then never mixes messages with and without the
	// check, which the Go race detector reports as a data race inside
	// nats-server (its first check on a stream leader initializes state
	// that its apply loop reads without a lock).
	for {
		last, _, err := n.lastSeq(ctx, n.gsubj())
		if err != nil {
			return fmt.Errorf("cluster: queue group %q: %w", group, err)
		}
		_, err = n.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(last))
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == 10164):
			if ctx.Err() != nil {
				return fmt.Errorf("cluster: queue group %q: %w", group, n.wrap(ctx.Err()))
			}
		default:
			return fmt.Errorf("cluster: queue group %q: %w", group, n.wrap(err))
		}
	}
}

// onGroup hands a registration to the feed; live is false while Attach
// replays the old ones.
func (n *Node) onGroup(h nats.Header, live bool) {
	node, group := h.Get(hNode), h.Get(hGroup)
	joined := h.Get(hJoined) == "1"
	n.fed().Group(node, group, h.Get(hPattern), joined)
	if group == "" && !joined && live && h.Get(hBy) != node {
		n.stats.withdrawn.Add(1) // another node withdrew a silent one's share
	}
	if !live || node != n.cfg.Name || group != "" || h.Get(hBy) == n.cfg.Name {
		return
	}
	// Another node took this one for gone (it was silent too long): say
	// again which groups it serves.
	n.mu.Lock()
	var again [][2]string
	for g := range n.mine {
		again = append(again, g)
	}
	closed := n.closed
	if !closed {
		n.wg.Add(1)
	}
	n.mu.Unlock()
	if closed {
		return
	}
	go func() {
		defer n.wg.Done()
		for _, g := range again {
			if err := n.publishGroup(n.ctx, n.cfg.Name, g[0], g[1], true); err != nil {
				n.log.Warn("cluster: register queue group again", "group", g[0], "err", err)
			}
		}
	}()
}

// loadGroups hands the feed every queue-group registration in the stream
// and returns the stream sequence to continue from.
func (n *Node) loadGroups(ctx context.Context) (uint64, error) {
	info, err := n.st.Info(ctx)
	if err != nil {
		return 0, n.wrap(err)
	}
	last := info.State.LastSeq
	for at := uint64(1); at <= last; {
		m, err := n.st.GetMsg(ctx, at, jetstream.WithGetMsgSubject(n.gsubj()))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return 0, n.wrap(err)
		}
		if m.Sequence > last {
			break
		}
		n.onGroup(m.Header, false)
		at = m.Sequence + 1
	}
	return last + 1, nil
}
