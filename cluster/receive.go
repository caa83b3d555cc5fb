package cluster

import (
	"context"
	"strings"

	"github.com/courierbus/courier/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func (n *Node) onRecord(m jetstream.Msg) {
	if md, err := m.Metadata(); err == nil {
		n.fedAt.mark(md.Sequence.Stream, md.Timestamp)
	}
	if m.Subject() == n.gsubj() {
		n.onGroup(m.Headers(), true)
		return
	}
	topic, ok := strings.CutPrefix(m.Subject(), n.subj)
	if !ok {
		return
	}
	var r bus.Record
	if err := decode(m.Headers(), m.Data(), &r); err != nil || r.Seq == 0 {
		n.log.Error("cluster: a message in the stream is not Courier's", "subject", m.Subject(), "err", err)
		return
	}
	n.logOf(topic).saw(n.epochOf(m.Headers()), r.Seq)
	n.fed().Record(topic, r)
	n.stats.fed.Add(1)
	n.stats.feedSeq.Store(n.fedAt.seq())
}

// PublishVolatile implements [bus.VolatileBroker]: at-most-once, over
// NATS core, to the other nodes.
func (n *Node) PublishVolatile(ctx context.Context, topic string, r bus.Record) error {
	m, err := n.msg(n.cfg.Prefix+".v."+topic, &r)
	if err != nil {
		return err
	}
	if err := n.nc.PublishMsg(m); err != nil {
		return n.wrap(err)
	}
	return nil
}

func (n *Node) onVolatile(m *nats.Msg) {
	if m.Header.Get(hNode) == n.cfg.Name {
		return
	}
	topic, ok := strings.CutPrefix(m.Subject, n.cfg.Prefix+".v.")
	if !ok {
		return
	}
	var r bus.Record
	if err := decode(m.Header, m.Data, &r); err != nil {
		return
	}
	n.fed().Volatile(topic, r)
}
