package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type presence struct {
	Room   string `json:"room"`
	Member string `json:"member"`
	Info   string `json:"info,omitempty"`
	Node   string `json:"node"`
}

// SharePresence implements [bus.PresenceBroker].
func (n *Node) SharePresence(ctx context.Context, room, member, info string, joined bool) error {
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	k := key(room, member)
	var err error
	if joined {
		v, _ := json.Marshal(presence{room, member, info, n.cfg.Name})
		_, err = n.kvP.Put(ctx, k, v)
	} else {
		err = n.kvP.Delete(ctx, k)
	}
	if err != nil {
		return n.wrap(err)
	}
	return nil
}

func (n *Node) watchPresence(w jetstream.KeyWatcher) {
	defer n.wg.Done()
	defer w.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue // the initial values are all in
			}
			room, member, ok := splitKey(e.Key())
			if !ok {
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				n.fed().Presence(room, member, "", false)
				continue
			}
			var p presence
			if json.Unmarshal(e.Value(), &p) != nil {
				continue
			}
			if p.Node == n.cfg.Name {
				// The member is this node's now (a session taken over
				// from another node): no longer another node's.
				n.fed().Presence(room, member, "", false)
				continue
			}
			n.fed().Presence(room, member, p.Info, true)
		}
	}
}

func splitKey(k string) (room, member string, ok bool) {
	a, b, ok := strings.Cut(k, ".")
	if !ok {
		return "", "", false
	}
	r, err1 := base64.RawURLEncoding.DecodeString(a)
	m, err2 := base64.RawURLEncoding.DecodeString(b)
	return string(r), string(m), err1 == nil && err2 == nil
}

// beat tells the others this node is alive, and removes the members of
// nodes that stopped beating more than MemberGrace ago.
func (n *Node) beat() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Heartbeat)
	defer t.Stop()
	for {
		n.nc.Publish(n.cfg.Prefix+".hb", []byte(n.cfg.Name))
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		var dead, silent []string
		n.mu.Lock()
		for name, at := range n.seen {
			if now.Sub(at) > 3*n.cfg.Heartbeat && !n.silent[name] {
				n.silent[name] = true
				silent = append(silent, name)
			}
			if now.Sub(at) > n.cfg.MemberGrace+3*n.cfg.Heartbeat && !n.gone[name] {
				n.gone[name] = true
				dead = append(dead, name)
			}
		}
		n.mu.Unlock()
		for _, name := range silent {
			// A silent node's queue groups get nothing more: the others
			// share its part. Every node says so; saying it twice is
			// harmless.
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.Timeout)
			if err := n.publishGroup(ctx, name, "", "", false); err != nil {
				n.log.Warn("cluster: forget the groups of a silent node", "node", name, "err", err)
			}
			cancel()
		}
		for _, name := range dead {
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.Timeout)
			n.dropMembers(ctx, name)
			cancel()
			n.stats.dropped.Add(1)
		}
	}
}

func (n *Node) onBeat(m *nats.Msg) {
	name := string(m.Data)
	if name == n.cfg.Name {
		return
	}
	n.mu.Lock()
	n.seen[name] = time.Now()
	delete(n.gone, name)
	delete(n.silent, name)
	n.mu.Unlock()
}

// dropMembers removes from their rooms the members of node name. Every
// surviving node does it; deleting twice is harmless.
func (n *Node) dropMembers(ctx context.Context, name string) {
	lister, err := n.kvP.ListKeys(ctx)
	if err != nil {
		n.log.Warn("cluster: list presence", "err", err)
		return
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	for _, k := range keys {
		e, err := n.kvP.Get(ctx, k)
		if err != nil {
			continue
		}
		var p presence
		if json.Unmarshal(e.Value(), &p) == nil && p.Node == name {
			n.kvP.Delete(ctx, k, jetstream.LastRevision(e.Revision()))
		}
	}
}
