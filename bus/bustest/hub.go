package bustest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/courierbus/courier/bus"
)

// Hub is a broker in memory: buses in one process share their topics
// through it as the nodes of a cluster would. It is the reference for the
// Broker contract (and the suite's second implementation); Node gives each
// bus its side.
type Hub struct {
	log *bus.MemoryStore // the shared logs and durable positions

	mu      sync.Mutex
	nodes   []*HubNode
	dedupe  map[[2]string]uint64 // topic, publisher id -> seq
	serving map[string][]*serving
	next    int
	wg      sync.WaitGroup
}

// NewHub returns an empty hub. Close it after the buses.
func NewHub() *Hub {
	return &Hub{log: bus.NewMemoryStore(), dedupe: make(map[[2]string]uint64), serving: make(map[string][]*serving)}
}

// Close ends every node's delivery goroutine.
func (h *Hub) Close() {
	h.mu.Lock()
	nodes := h.nodes
	h.nodes = nil
	h.mu.Unlock()
	for _, n := range nodes {
		n.stop()
	}
	h.wg.Wait()
	h.log.Close()
}

// HubNode is one bus's side of a Hub: a bus.Broker with every optional
// interface.
type HubNode struct {
	*bus.MemoryStore // Topic, Read, SeqAt and the consumers: shared
	h                *Hub
	name             string

	mu     sync.Mutex
	feed   bus.Feed
	queue  []func(bus.Feed) // what the feed has yet to be handed, in order
	wake   chan struct{}
	done   chan struct{}
	closed bool
}

// Node returns the side of the hub for the bus called name.
func (h *Hub) Node(name string) *HubNode {
	return &HubNode{MemoryStore: h.log, h: h, name: name, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// Name implements bus.GroupBroker.
func (n *HubNode) Name() string { return n.name }

// Attach implements bus.Broker.
func (n *HubNode) Attach(f bus.Feed) error {
	n.mu.Lock()
	if n.feed != nil {
		n.mu.Unlock()
		return errors.New("bustest: node attached twice")
	}
	n.feed = f
	n.mu.Unlock()
	h := n.h
	h.mu.Lock()
	h.nodes = append(h.nodes, n)
	h.wg.Add(1)
	h.mu.Unlock()
	go n.run()
	return nil
}

// Close detaches the node: its bus gets nothing more, and the others
// forget its queue groups.
func (n *HubNode) Close() {
	h := n.h
	h.mu.Lock()
	for i, x := range h.nodes {
		if x == n {
			h.nodes = append(h.nodes[:i:i], h.nodes[i+1:]...)
			break
		}
	}
	h.broadcast(nil, func(f bus.Feed) { f.Group(n.name, "", "", false) })
	h.mu.Unlock()
	n.stop()
}

func (n *HubNode) stop() {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		close(n.done)
	}
	n.mu.Unlock()
}

func (n *HubNode) run() {
	defer n.h.wg.Done()
	for {
		n.mu.Lock()
		q := n.queue
		n.queue = nil
		f := n.feed
		n.mu.Unlock()
		for _, do := range q {
			select {
			case <-n.done:
				return
			default:
			}
			do(f)
		}
		select {
		case <-n.wake:
		case <-n.done:
			return
		}
	}
}

func (n *HubNode) push(do func(bus.Feed)) {
	n.mu.Lock()
	n.queue = append(n.queue, do)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// broadcast queues do for every node but skip. Caller holds h.mu, which
// keeps the order of everything broadcast the same for every node.
func (h *Hub) broadcast(skip *HubNode, do func(bus.Feed)) {
	for _, n := range h.nodes {
		if n != skip {
			n.push(do)
		}
	}
}

// Append implements bus.Store on the shared log, and hands the record to
// every bus.
func (n *HubNode) Append(ctx context.Context, topic string, r bus.Record) (uint64, error) {
	h := n.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.PublisherID != "" {
		if seq, ok := h.dedupe[[2]string{topic, r.PublisherID}]; ok {
			return seq, nil
		}
	}
	seq, err := h.log.Append(ctx, topic, r)
	if err != nil {
		return 0, err
	}
	if r.PublisherID != "" {
		h.dedupe[[2]string{topic, r.PublisherID}] = seq
	}
	r.Seq = seq
	h.broadcast(nil, func(f bus.Feed) { f.Record(topic, r) })
	return seq, nil
}

// PublishVolatile implements bus.VolatileBroker.
func (n *HubNode) PublishVolatile(_ context.Context, topic string, r bus.Record) error {
	h := n.h
	h.mu.Lock()
	defer h.mu.Unlock()
	h.broadcast(n, func(f bus.Feed) { f.Volatile(topic, r) })
	return nil
}

// SharePresence implements bus.PresenceBroker.
func (n *HubNode) SharePresence(_ context.Context, room, member, info string, joined bool) error {
	h := n.h
	h.mu.Lock()
	defer h.mu.Unlock()
	h.broadcast(n, func(f bus.Feed) { f.Presence(room, member, info, joined) })
	return nil
}

// ShareGroup implements bus.GroupBroker.
func (n *HubNode) ShareGroup(_ context.Context, group, pattern string, joined bool) error {
	h := n.h
	h.mu.Lock()
	defer h.mu.Unlock()
	h.broadcast(nil, func(f bus.Feed) { f.Group(n.name, group, pattern, joined) })
	return nil
}

type serving struct {
	h func(context.Context, []byte) ([]byte, error)
}

// Serve implements bus.RequestBroker.
func (n *HubNode) Serve(name string, fn func(context.Context, []byte) ([]byte, error)) (func(), error) {
	h := n.h
	s := &serving{fn}
	h.mu.Lock()
	h.serving[name] = append(h.serving[name], s)
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		list := h.serving[name]
		for i, x := range list {
			if x == s {
				h.serving[name] = append(list[:i:i], list[i+1:]...)
				break
			}
		}
	}, nil
}

// Request implements bus.RequestBroker.
func (n *HubNode) Request(ctx context.Context, name string, data []byte) ([]byte, error) {
	h := n.h
	h.mu.Lock()
	list := h.serving[name]
	var s *serving
	if len(list) > 0 {
		h.next++
		s = list[h.next%len(list)]
	}
	h.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("%w: %q", bus.ErrNoHandler, name)
	}
	return s.h(ctx, data)
}

var (
	_ bus.Broker         = (*HubNode)(nil)
	_ bus.VolatileBroker = (*HubNode)(nil)
	_ bus.PresenceBroker = (*HubNode)(nil)
	_ bus.GroupBroker    = (*HubNode)(nil)
	_ bus.RequestBroker  = (*HubNode)(nil)
)
