package observe

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/courierbus/courier/bus"
)

// otherLabel is the label value shared by the names past MaxLabels.
const otherLabel = "$other"

// Collector is a prometheus.Collector of a bus's counters, and with
// [WithBridge] and [WithStore] of a bridge's and a persist store's. It reads
// them when it is scraped and counts nothing itself, so publishing costs
// the same with or without it. Make one with [NewCollector] and register
// it; it is safe for concurrent use.
type Collector struct {
	bus *bus.Bus
	cfg collectorConfig
	d   descs

	mu       sync.Mutex // guards topics, patterns, dropped
	topics   labelSet
	patterns labelSet
	dropped  map[string]*monotonic // by pattern label
}

// descs are the descriptions of every metric the collector exports.
type descs struct {
	published, delivered, redelivered, deadLettered, dropped, history *prometheus.Desc
	topics, subscriptions, rooms, members                             *prometheus.Desc
	queued, unacked, backlog, subDropped                              *prometheus.Desc

	connections, sessions, routes, accepted, refused, resumes *prometheus.Desc
	resumesUnrecovered, resumesFailed, slow, bad, ended       *prometheus.Desc
	framesIn, framesOut, errorFrames                          *prometheus.Desc

	commits, ops, diskBytes, failed, openDropped *prometheus.Desc
}

func newDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("courier_"+name, help, labels, nil)
}

func newDescs() descs {
	return descs{
		published:     newDesc("bus_published_total", "Messages published, volatile ones included.", "topic"),
		delivered:     newDesc("bus_delivered_total", "First deliveries to in-process subscriptions (bridge routes included), over all subscriptions.", "topic"),
		redelivered:   newDesc("bus_redelivered_total", "Further delivery attempts after a failure or an ack timeout.", "topic"),
		deadLettered:  newDesc("bus_dead_lettered_total", "Messages that failed their last attempt and went to the dead-letter topic.", "topic"),
		dropped:       newDesc("bus_dropped_total", "Messages dropped by full queues (DropOldest, DropNewest, volatile publishes that found no room).", "topic"),
		history:       newDesc("bus_history_messages", "Messages held in the topic's in-memory history ring.", "topic"),
		topics:        newDesc("bus_topics", "Topics the bus knows."),
		subscriptions: newDesc("bus_subscriptions", "Live subscriptions, by pattern.", "pattern"),
		rooms:         newDesc("bus_rooms", "Rooms that have members."),
		members:       newDesc("bus_members", "Members (bridge sessions and in-process members)."),
		queued:        newDesc("bus_queued_messages", "Messages queued for subscriptions, not yet handed to their handlers.", "pattern"),
		unacked:       newDesc("bus_unacked_messages", "Messages handed to handlers and not yet acknowledged (pending acks).", "pattern"),
		backlog:       newDesc("bus_backlog_messages", "History messages subscriptions still have to catch up on.", "pattern"),
		subDropped:    newDesc("bus_subscription_dropped_total", "Messages dropped by the full queues of subscriptions with this pattern. Subscriptions that end take their count with them; the series never decreases but may then miss drops.", "pattern"),

		connections:        newDesc("bridge_connections", "Open WebSocket connections."),
		sessions:           newDesc("bridge_sessions", "Sessions, connected or waiting to be resumed."),
		routes:             newDesc("bridge_routes", "Bus subscriptions the bridge holds, one per distinct pattern."),
		accepted:           newDesc("bridge_connections_accepted_total", "WebSocket connections upgraded."),
		refused:            newDesc("bridge_connections_refused_total", "Requests refused before the upgrade (origin, authentication, closing)."),
		resumes:            newDesc("bridge_resumes_total", "Sessions resumed by a reconnecting client."),
		resumesUnrecovered: newDesc("bridge_resumes_unrecovered_total", "Resumes in which some subscription's missed messages were no longer in history."),
		resumesFailed:      newDesc("bridge_resumes_failed_total", "Resume attempts that found no session (expired or unknown); the client got a new one."),
		slow:               newDesc("bridge_slow_disconnects_total", "Connections closed because the client did not read fast enough."),
		bad:                newDesc("bridge_bad_frame_disconnects_total", "Connections closed for sending too many bad frames."),
		ended:              newDesc("bridge_sessions_ended_total", "Sessions ended for good (bye, resume window over, bridge closed)."),
		framesIn:           newDesc("bridge_frames_received_total", "Protocol frames received from clients."),
		framesOut:          newDesc("bridge_frames_sent_total", "Protocol frames sent to clients."),
		errorFrames:        newDesc("bridge_error_frames_total", "Error frames sent to clients, by protocol error code.", "code"),

		commits:     newDesc("persist_commits_total", "Batches committed by the store's writer (group commit)."),
		ops:         newDesc("persist_committed_ops_total", "Changes committed: appends and consumer positions."),
		diskBytes:   newDesc("persist_disk_bytes", "Badger's size on disk, by part: lsm (index and small values) and vlog (value log).", "part"),
		failed:      newDesc("persist_write_failed", "1 when a sync failed and the store refuses writes until reopened, else 0."),
		openDropped: newDesc("persist_dropped_at_open_records", "Records the store dropped as it opened because a crash left them unreadable at the end of a topic's log."),
	}
}

// NewCollector returns a collector of b's counters. Register it with a
// prometheus.Registerer; see the package doc for the metrics.
func NewCollector(b *bus.Bus, opts ...CollectorOption) (*Collector, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil bus", ErrInvalidOption)
	}
	cfg := collectorConfig{maxLabels: 500}
	for _, o := range opts {
		o.applyCollector(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Collector{
		bus: b, cfg: cfg, d: newDescs(),
		topics:   newLabelSet(cfg.maxLabels),
		patterns: newLabelSet(cfg.maxLabels),
		dropped:  make(map[string]*monotonic),
	}, nil
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	d := c.d
	for _, x := range []*prometheus.Desc{
		d.published, d.delivered, d.redelivered, d.deadLettered, d.dropped, d.history,
		d.topics, d.subscriptions, d.rooms, d.members, d.queued, d.unacked, d.backlog, d.subDropped,
	} {
		ch <- x
	}
	if c.cfg.bridge != nil {
		for _, x := range []*prometheus.Desc{
			d.connections, d.sessions, d.routes, d.accepted, d.refused, d.resumes,
			d.resumesUnrecovered, d.resumesFailed, d.slow, d.bad, d.ended, d.framesIn, d.framesOut, d.errorFrames,
		} {
			ch <- x
		}
	}
	if c.cfg.store != nil {
		for _, x := range []*prometheus.Desc{d.commits, d.ops, d.diskBytes, d.failed, d.openDropped} {
			ch <- x
		}
	}
	if c.cfg.commits != nil {
		c.cfg.commits.Describe(ch)
	}
}

type topicSums struct {
	published, delivered, redelivered, deadLettered, dropped, history float64
}

type patternSums struct {
	n, queued, unacked, backlog, dropped float64
}

// Collect implements prometheus.Collector: it takes a snapshot of the
// counters and sends them.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.bus.Stats()
	topics := make(map[string]*topicSums)
	patterns := make(map[string]*patternSums)
	haveDropped := false
	c.mu.Lock()
	for _, t := range st.Topics {
		l := c.topics.label(label(t.Name, c.cfg.topicLabel))
		s := topics[l]
		if s == nil {
			s = new(topicSums)
			topics[l] = s
		}
		s.published += float64(t.Published)
		s.delivered += float64(t.Delivered)
		s.redelivered += float64(t.Redelivered)
		s.deadLettered += float64(t.DeadLettered)
		s.history += float64(t.History)
		if n, ok := topicDropped(t); ok {
			s.dropped += float64(n)
			haveDropped = true
		}
	}
	for _, sub := range st.Subscriptions {
		l := c.patterns.label(label(sub.Pattern, c.cfg.topicLabel))
		s := patterns[l]
		if s == nil {
			s = new(patternSums)
			patterns[l] = s
		}
		s.n++
		s.queued += float64(sub.QueueLen)
		s.unacked += float64(sub.Pending)
		s.backlog += float64(sub.Backlog)
		s.dropped += float64(sub.Dropped)
	}
	for l, s := range patterns {
		m := c.dropped[l]
		if m == nil {
			m = new(monotonic)
			c.dropped[l] = m
		}
		s.dropped = m.next(s.dropped)
	}
	// Patterns whose subscriptions all ended keep their last count.
	for l, m := range c.dropped {
		if patterns[l] == nil {
			patterns[l] = &patternSums{dropped: m.next(0)}
		}
	}
	c.mu.Unlock()

	d := c.d
	counter := func(desc *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, lv...)
	}
	gauge := func(desc *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, lv...)
	}
	for l, s := range topics {
		counter(d.published, s.published, l)
		counter(d.delivered, s.delivered, l)
		counter(d.redelivered, s.redelivered, l)
		counter(d.deadLettered, s.deadLettered, l)
		gauge(d.history, s.history, l)
		if haveDropped {
			counter(d.dropped, s.dropped, l)
		}
	}
	for l, s := range patterns {
		gauge(d.subscriptions, s.n, l)
		gauge(d.queued, s.queued, l)
		gauge(d.unacked, s.unacked, l)
		gauge(d.backlog, s.backlog, l)
		counter(d.subDropped, s.dropped, l)
	}
	gauge(d.topics, float64(len(st.Topics)))
	gauge(d.rooms, float64(st.Rooms))
	gauge(d.members, float64(st.Members))

	if br := c.cfg.bridge; br != nil {
		v := readBridge(br)
		gauge(d.connections, float64(v.Connections))
		gauge(d.sessions, float64(v.Sessions))
		gauge(d.routes, float64(v.Routes))
		counter(d.accepted, float64(v.Accepted))
		counter(d.refused, float64(v.Refused))
		counter(d.resumes, float64(v.Resumed))
		counter(d.slow, float64(v.SlowDisconnects))
		counter(d.bad, float64(v.BadDisconnects))
		counter(d.ended, float64(v.SessionsEnded))
		counter(d.resumesUnrecovered, float64(v.ResumesUnrecovered))
		counter(d.resumesFailed, float64(v.ResumesFailed))
		counter(d.framesIn, float64(v.FramesIn))
		counter(d.framesOut, float64(v.FramesOut))
		for code, n := range v.ErrorFrames {
			counter(d.errorFrames, float64(n), code)
		}
	}
	if st := c.cfg.store; st != nil {
		s := st.Stats()
		counter(d.commits, float64(s.Batches))
		counter(d.ops, float64(s.Ops))
		gauge(d.diskBytes, float64(s.LSMBytes), "lsm")
		gauge(d.diskBytes, float64(s.LogBytes), "vlog")
		failed := 0.0
		if s.Failed {
			failed = 1
		}
		gauge(d.failed, failed)
		gauge(d.openDropped, float64(s.Dropped))
	}
	if c.cfg.commits != nil {
		c.cfg.commits.Collect(ch)
	}
}

// labelSet bounds the values of a label: the first max values seen are
// kept, later ones become otherLabel.
type labelSet struct {
	max   int
	known map[string]struct{}
}

func newLabelSet(max int) labelSet { return labelSet{max: max, known: make(map[string]struct{})} }

func (s *labelSet) label(v string) string {
	if _, ok := s.known[v]; ok {
		return v
	}
	if len(s.known) < s.max {
		s.known[v] = struct{}{}
		return v
	}
	return otherLabel
}

// monotonic turns a sum of counters whose terms may vanish (subscriptions
// that end) into a counter that never decreases: a drop is taken as terms
// that left, and their count is kept.
type monotonic struct {
	offset, last float64
}

func (m *monotonic) next(raw float64) float64 {
	v := raw + m.offset
	if v < m.last {
		m.offset += m.last - v
		v = m.last
	}
	m.last = v
	return v
}
