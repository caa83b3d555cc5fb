package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/courierbus/courier/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Attach implements [bus.Broker]: it starts the node's share of the cluster
// for the bus. When it fails it leaves nothing running, and the node may be
// attached again (by a new bus).
func (n *Node) Attach(f bus.Feed) error {
	n.mu.Lock()
	mine, err := n.attach(f)
	var cc jetstream.ConsumeContext
	var subs []*nats.Subscription
	if err != nil && mine {
		// Undo what started, so that the node can be attached again.
		cc, subs = n.cc, n.subs
		n.cc, n.subs = nil, nil
		n.feed.Store(nil)
	}
	n.mu.Unlock()
	if cc != nil {
		cc.Stop()
		<-cc.Closed()
	}
	for _, s := range subs {
		s.Unsubscribe()
	}
	return err
}

// attach does Attach's work; mine tells whether it attached f, if only
// for a while. Caller holds mu.
func (n *Node) attach(f bus.Feed) (mine bool, err error) {
	if n.feed.Load() != nil {
		return false, errors.New("cluster: node already attached to a bus")
	}
	if n.closed {
		return false, bus.ErrClosed
	}
	n.feed.Store(&feedRef{f})
	return true, n.start()
}

// start starts the node's share of the cluster. Caller holds mu.
func (n *Node) start() error {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.Timeout)
	defer cancel()
	// Members this node had before a restart are gone with it.
	n.dropMembers(ctx, n.cfg.Name)
	// The queue groups registered so far, then everything after them.
	from, err := n.loadGroups(ctx)
	if err != nil {
		return err
	}
	if err := n.publishGroup(ctx, n.cfg.Name, "", "", false); err != nil {
		return err
	}
	if err := n.startFeed(ctx, from); err != nil {
		return err
	}
	sub := func(subject, queue string, h nats.MsgHandler) error {
		var s *nats.Subscription
		var err error
		if queue == "" {
			s, err = n.nc.Subscribe(subject, h)
		} else {
			s, err = n.nc.QueueSubscribe(subject, queue, h)
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		n.subs = append(n.subs, s)
		return nil
	}
	if err := sub(n.cfg.Prefix+".v.>", "", n.onVolatile); err != nil {
		return err
	}
	if err := sub(n.cfg.Prefix+".hb", "", n.onBeat); err != nil {
		return err
	}
	w, err := n.kvP.WatchAll(n.ctx)
	if err != nil {
		return fmt.Errorf("%w: presence: %v", ErrUnavailable, err)
	}
	n.wg.Add(3)
	go n.watchPresence(w)
	go n.beat()
	go n.watch()
	return nil
}

// startFeed starts the node's reading of the stream at stream sequence
// from. Caller holds mu.
func (n *Node) startFeed(ctx context.Context, from uint64) error {
	cc, err := n.consume(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{n.subj + ">", n.gsubj()},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
	})
	n.cc = cc
	return err
}

// consume starts a feed: an ordered consumer of the stream handing its
// messages to onRecord.
func (n *Node) consume(ctx context.Context, cfg jetstream.OrderedConsumerConfig) (jetstream.ConsumeContext, error) {
	cons, err := n.js.OrderedConsumer(ctx, n.cfg.Stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	cc, err := cons.Consume(n.onRecord, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrOrderedConsumerReset) {
			n.log.Warn("cluster: feed", "err", err)
		}
	}))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return cc, nil
}

// feedRef holds the Feed of the bus a node is attached to.
type feedRef struct{ bus.Feed }

// fed returns the Feed of the attached bus. Callbacks of a failed Attach
// may still run after it undid itself: they reach a Feed that drops what
// it is given.
func (n *Node) fed() bus.Feed {
	if r := n.feed.Load(); r != nil {
		return r.Feed
	}
	return noFeed{}
}

// noFeed drops everything.
type noFeed struct{}

func (noFeed) Record(string, bus.Record)             {}
func (noFeed) Volatile(string, bus.Record)           {}
func (noFeed) Group(string, string, string, bool)    {}
func (noFeed) Presence(string, string, string, bool) {}
