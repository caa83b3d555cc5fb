package cluster_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/courierbus/courier/bus"
	"github.com/courierbus/courier/cluster"
)

// What the power-cut rig asks of the stream, and its figures.

// streamLeader waits until the stream has a leader, or ctx ends.
func (r *powerRig) streamLeader(ctx context.Context) error {
	js, err := jetstream.New(r.mon)
	if err != nil {
		return err
	}
	for {
		// A request that reaches no leader gets no answer: bound each.
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		s, err := js.Stream(ictx, "COURIER")
		cancel()
		if err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Leader != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream COURIER without a leader: %w (last: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// streamLast returns the stream's last sequence number.
func (r *powerRig) streamLast(ctx context.Context) (uint64, error) {
	js, err := jetstream.New(r.mon)
	if err != nil {
		return 0, err
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := js.Stream(ictx, "COURIER")
	if err != nil {
		return 0, err
	}
	return st.CachedInfo().State.LastSeq, nil
}

// subjects returns how many messages the stream holds on each subject.
func (r *powerRig) subjects(ctx context.Context) (map[string]uint64, error) {
	js, err := jetstream.New(r.mon)
	if err != nil {
		return nil, err
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := js.Stream(ictx, "COURIER")
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ictx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		return nil, err
	}
	return info.State.Subjects, nil
}

// streamHolds returns how many messages of topic the stream holds.
func (r *powerRig) streamHolds(ctx context.Context, topic string) (int, error) {
	subj, err := r.subjects(ctx)
	return int(subj["courier.m."+topic]), err
}

// shortfall compares what the stream holds of each topic with the highest
// sequence number acknowledged, and describes the topics that fell short.
func (r *powerRig) shortfall(ctx context.Context) (string, error) {
	// What was acknowledged before the stream is asked: publishes go on.
	r.topMu.Lock()
	top := maps.Clone(r.top)
	r.topMu.Unlock()
	subj, err := r.subjects(ctx)
	if err != nil {
		return "", err
	}
	var short []string
	for _, topic := range r.topics {
		if n := subj["courier.m."+topic]; n < top[topic] {
			short = append(short, fmt.Sprintf("%s holds %d messages, %d were acknowledged", topic, n, top[topic]))
		}
	}
	return strings.Join(short, "; "), nil
}

// publishing waits until every node has had a publish acknowledged since
// the counts in from, or ctx ends.
func (r *powerRig) publishing(ctx context.Context, from []int64) error {
	for {
		ok := true
		for i := range r.acked {
			ok = ok && r.acked[i].Load() > from[i]
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nodes not publishing again: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (r *powerRig) ackCounts() []int64 {
	c := make([]int64, len(r.acked))
	for i := range c {
		c[i] = r.acked[i].Load()
	}
	return c
}

// powerFigures is what a run of power cuts did.
type powerFigures struct {
	cycles, ones, alls    int
	acked, failed, lost   int
	doubled, conflicts    int
	dups, delivered       int
	leader, back          []time.Duration // per cycle, from the restart: stream leader, every node publishing again
	epochs                map[uint64]bool
	lastSeqs, historyMsgs int
}

func (f powerFigures) String() string {
	return fmt.Sprintf("%d cycles (%d of one server, %d of all three): %d acknowledged, %d publishes failed; "+
		"%d acknowledged lost, %d payloads twice in history, %d positions given to two payloads, "+
		"%d payloads given twice to a de-duplicating subscriber (of %d deliveries); "+
		"stream leader back after %s, every node publishing after %s; %d epochs; %d messages in history",
		f.cycles, f.ones, f.alls, f.acked, f.failed, f.lost, f.doubled, f.conflicts, f.dups, f.delivered,
		spread(f.leader), spread(f.back), len(f.epochs), f.historyMsgs)
}

// spread formats durations as "median (max)".
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("%v median (max %v)", s[len(s)/2].Round(10*time.Millisecond), s[len(s)-1].Round(10*time.Millisecond))
}

// history reads every topic's whole history through a bus of its own,
// joined through server 0, with every message's position and payload by
// sequence number (index 0 is seq 1).
func (r *powerRig) history(ctx context.Context) (map[string][]posKey, map[string][]string, error) {
	conn, err := nats.Connect(r.nats.URL(0))
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	cfg := r.cfg
	cfg.Name = "reader"
	node, err := cluster.New(ctx, conn, cfg)
	if err != nil {
		return nil, nil, err
	}
	defer node.Close()
	b, err := bus.New(bus.WithBroker(node))
	if err != nil {
		return nil, nil, err
	}
	defer b.Close()
	keys, payloads := map[string][]posKey{}, map[string][]string{}
	for _, topic := range r.topics {
		bd, err := b.Bounds(ctx, topic)
		if err != nil {
			return nil, nil, err
		}
		if bd.First != 1 && bd.Last > 0 {
			return nil, nil, fmt.Errorf("%s: history starts at %d", topic, bd.First)
		}
		for from := uint64(1); from <= bd.Last; {
			ms, err := b.Read(ctx, topic, from, 256)
			if err != nil {
				return nil, nil, fmt.Errorf("%s from %d: %w", topic, from, err)
			}
			if len(ms) == 0 {
				return nil, nil, fmt.Errorf("%s: nothing at %d of %d", topic, from, bd.Last)
			}
			for _, m := range ms {
				data, err := m.Data()
				if err != nil {
					return nil, nil, err
				}
				keys[topic] = append(keys[topic], posKey{topic, m.Position().Epoch, m.Seq()})
				payloads[topic] = append(payloads[topic], string(data))
			}
			from += uint64(len(ms))
		}
	}
	return keys, payloads, nil
}
