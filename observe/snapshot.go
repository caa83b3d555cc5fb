package observe

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bus"
)

// Bounds of a snapshot, so that one stays small enough to push several
// times a second (well under the bridge's 1 MiB outbound limit).
const (
	maxTopicRows   = 200
	maxSubRows     = 200
	maxRooms       = 100
	maxRoomMembers = 100
	maxSessions    = 200
	maxDataPreview = 256
	maxRedriven    = 4096
)

// RedrivenHeader is the header a re-driven dead letter carries: the name of
// its dead-letter topic and its sequence number there, "$dead.jobs#7".
const RedrivenHeader = "courier-redriven-from"

// snapshot is what the admin page draws. Its JSON is the page's input.
type snapshot struct {
	Time     time.Time      `json:"time"`
	Interval int64          `json:"interval_ms"`
	Bus      busRow         `json:"bus"`
	Topics   []topicRow     `json:"topics"`
	Subs     []subRow       `json:"subscriptions"`
	Rooms    []roomRow      `json:"rooms"`
	Sessions []sessionView  `json:"sessions"`
	Bridge   *bridgeRow     `json:"bridge"`
	Store    *storeRow      `json:"store"`
	Dead     []deadRow      `json:"dead"`
	More     map[string]int `json:"more"` // rows left out, by section
}

type busRow struct {
	Topics        int `json:"topics"`
	Subscriptions int `json:"subscriptions"`
	Rooms         int `json:"rooms"`
	Members       int `json:"members"` // the admin pages' own sessions left out
}

type topicRow struct {
	Name         string  `json:"name"`
	Published    uint64  `json:"published"`
	Delivered    uint64  `json:"delivered"`
	Redelivered  uint64  `json:"redelivered"`
	DeadLettered uint64  `json:"dead_lettered"`
	PubRate      float64 `json:"pub_rate"` // messages per second over the last second or so
	DelRate      float64 `json:"del_rate"`
	Last         uint64  `json:"last"`
	History      int     `json:"history"`
	Persisted    bool    `json:"persisted"`
}

type subRow struct {
	Pattern      string `json:"pattern"`
	Queue        string `json:"queue,omitempty"`
	Durable      string `json:"durable,omitempty"`
	Owner        string `json:"owner,omitempty"`
	Volatile     bool   `json:"volatile"`
	Delivered    uint64 `json:"delivered"`
	Redelivered  uint64 `json:"redelivered"`
	DeadLettered uint64 `json:"dead_lettered"`
	Dropped      uint64 `json:"dropped"`
	Queued       int    `json:"queued"`
	Unacked      int    `json:"unacked"`
	Backlog      int    `json:"backlog"`
}

type roomRow struct {
	Name    string      `json:"name"`
	Count   int         `json:"count"`
	Members []memberRow `json:"members"`
}

type memberRow struct {
	ID      string `json:"id"`
	User    string `json:"user,omitempty"`
	Session bool   `json:"session"` // a session of the bridge
}

type bridgeRow struct {
	Connections        int               `json:"connections"`
	Sessions           int               `json:"sessions"`
	Routes             int               `json:"routes"`
	Accepted           uint64            `json:"accepted"`
	Refused            uint64            `json:"refused"`
	Resumed            uint64            `json:"resumed"`
	ResumesUnrecovered uint64            `json:"resumes_unrecovered"`
	ResumesFailed      uint64            `json:"resumes_failed"`
	SlowDisconnects    uint64            `json:"slow_disconnects"`
	BadDisconnects     uint64            `json:"bad_disconnects"`
	SessionsEnded      uint64            `json:"sessions_ended"`
	FramesIn           uint64            `json:"frames_in"`
	FramesOut          uint64            `json:"frames_out"`
	ErrorFrames        map[string]uint64 `json:"error_frames"`
}

type storeRow struct {
	Batches  uint64 `json:"batches"`
	Ops      uint64 `json:"ops"`
	LSMBytes int64  `json:"lsm_bytes"`
	LogBytes int64  `json:"vlog_bytes"`
	Failed   bool   `json:"failed"`
}

type deadRow struct {
	Key       string            `json:"key"` // "$dead.jobs#7": dead-letter topic and seq
	DeadTopic string            `json:"dead_topic"`
	Seq       uint64            `json:"seq"` // in the dead-letter topic
	Topic     string            `json:"topic"`
	OrigSeq   uint64            `json:"orig_seq"`
	Time      time.Time         `json:"time"`
	Attempts  int               `json:"attempts"`
	Error     string            `json:"error"`
	Pattern   string            `json:"pattern"`
	Durable   string            `json:"durable,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	Data      string            `json:"data"`             // a preview: text, or base64 when not UTF-8
	Binary    bool              `json:"binary,omitempty"` // Data is base64
	Size      int               `json:"size"`
	Redriven  uint64            `json:"redriven,omitempty"` // seq of the re-driven message
}

// snapshotter builds snapshots. It keeps what a snapshot needs from the
// previous ones: counts for the rates and the decoded dead letters.
type snapshotter struct {
	b        *bus.Bus
	br       *bridge.Bridge
	st       Store
	interval time.Duration
	deadMax  int
	own      func() int // sessions of the admin's own bridge (its pages), members of the bus too

	mu       sync.Mutex // guards the fields below
	baseAt   time.Time
	base     map[string][2]uint64 // topic → published, delivered at baseAt
	rates    map[string][2]float64
	dead     map[string]*deadCache // by dead-letter topic
	redriven map[string]uint64     // by deadRow.Key
}

// deadCache holds the newest dead letters of one dead-letter topic.
type deadCache struct {
	epoch uint64
	last  uint64 // last seq read
	rows  []deadRow
}

func newSnapshotter(b *bus.Bus, cfg *adminConfig) *snapshotter {
	return &snapshotter{
		b: b, br: cfg.bridge, st: cfg.store, interval: cfg.interval, deadMax: cfg.dead,
		dead: make(map[string]*deadCache), redriven: make(map[string]uint64),
	}
}

// take builds a snapshot now.
func (s *snapshotter) take(ctx context.Context) *snapshot {
	now := time.Now()
	st := s.b.Stats()
	snap := &snapshot{
		Time: now, Interval: s.interval.Milliseconds(),
		Bus:  busRow{Topics: len(st.Topics), Subscriptions: len(st.Subscriptions), Rooms: st.Rooms, Members: st.Members},
		More: map[string]int{},
	}
	if s.own != nil {
		snap.Bus.Members = max(0, st.Members-s.own())
	}
	if s.st != nil { // the store is someone's code, maybe I/O: not under s.mu
		x := s.st.Stats()
		snap.Store = &storeRow{Batches: x.Batches, Ops: x.Ops, LSMBytes: x.LSMBytes, LogBytes: x.LogBytes, Failed: x.Failed}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.updateRates(now, st.Topics)
	topics := slices.Clone(st.Topics)
	if len(topics) > maxTopicRows {
		slices.SortStableFunc(topics, func(a, b bus.TopicStats) int { return cmp.Compare(b.Published, a.Published) })
		snap.More["topics"] = len(topics) - maxTopicRows
		topics = topics[:maxTopicRows]
		slices.SortFunc(topics, func(a, b bus.TopicStats) int { return strings.Compare(a.Name, b.Name) })
	}
	snap.Topics = make([]topicRow, 0, len(topics))
	for _, t := range topics {
		r := s.rates[t.Name]
		snap.Topics = append(snap.Topics, topicRow{
			Name: t.Name, Published: t.Published, Delivered: t.Delivered, Redelivered: t.Redelivered,
			DeadLettered: t.DeadLettered, PubRate: r[0], DelRate: r[1], Last: t.Last, History: t.History,
			Persisted: t.Persisted,
		})
	}

	subs := st.Subscriptions
	if len(subs) > maxSubRows {
		snap.More["subscriptions"] = len(subs) - maxSubRows
		subs = subs[:maxSubRows]
	}
	snap.Subs = make([]subRow, 0, len(subs))
	for _, x := range subs {
		snap.Subs = append(snap.Subs, subRow{
			Pattern: x.Pattern, Queue: x.Queue, Durable: x.Durable, Owner: x.Owner, Volatile: x.Volatile,
			Delivered: x.Delivered, Redelivered: x.Redelivered, DeadLettered: x.DeadLettered, Dropped: x.Dropped,
			Queued: x.QueueLen, Unacked: x.Pending, Backlog: x.Backlog,
		})
	}

	rooms := s.b.Rooms()
	if len(rooms) > maxRooms {
		snap.More["rooms"] = len(rooms) - maxRooms
		rooms = rooms[:maxRooms]
	}
	snap.Rooms = make([]roomRow, 0, len(rooms))
	for _, name := range rooms {
		ids := s.b.RoomMembers(name)
		row := roomRow{Name: name, Count: len(ids)}
		for _, id := range ids[:min(len(ids), maxRoomMembers)] {
			m := memberRow{ID: id}
			if s.br != nil {
				if ident, ok := s.br.Identity(id); ok {
					m.User, m.Session = ident.ID, true
				}
			}
			row.Members = append(row.Members, m)
		}
		snap.Rooms = append(snap.Rooms, row)
	}

	if s.br != nil {
		v := readBridge(s.br)
		row := &bridgeRow{
			Connections: v.Connections, Sessions: v.Sessions, Routes: v.Routes, Accepted: v.Accepted,
			Refused: v.Refused, Resumed: v.Resumed, SlowDisconnects: v.SlowDisconnects,
			BadDisconnects: v.BadDisconnects, SessionsEnded: v.SessionsEnded, ErrorFrames: v.ErrorFrames,
			ResumesUnrecovered: v.ResumesUnrecovered, ResumesFailed: v.ResumesFailed,
			FramesIn: v.FramesIn, FramesOut: v.FramesOut,
		}
		snap.Bridge = row
		var total int
		snap.Sessions, total = bridgeSessions(s.br, maxSessions)
		if total > len(snap.Sessions) {
			snap.More["sessions"] = total - len(snap.Sessions)
		}
	}
	snap.Dead = s.deadLetters(ctx, st.Topics)
	return snap
}

// updateRates computes each topic's rates over the time since the base,
// once at least a second has passed. Caller holds s.mu.
func (s *snapshotter) updateRates(now time.Time, topics []bus.TopicStats) {
	cur := make(map[string][2]uint64, len(topics))
	for _, t := range topics {
		cur[t.Name] = [2]uint64{t.Published, t.Delivered}
	}
	if s.base == nil {
		s.base, s.baseAt, s.rates = cur, now, map[string][2]float64{}
		return
	}
	dt := now.Sub(s.baseAt).Seconds()
	if dt < 1 {
		return
	}
	rates := make(map[string][2]float64, len(cur))
	for name, c := range cur {
		b := s.base[name]
		rates[name] = [2]float64{float64(c[0]-min(b[0], c[0])) / dt, float64(c[1]-min(b[1], c[1])) / dt}
	}
	s.base, s.baseAt, s.rates = cur, now, rates
}

// deadLetters returns the newest dead letters over every dead-letter
// topic, newest first. It reads a dead-letter topic only when it grew.
// Caller holds s.mu.
func (s *snapshotter) deadLetters(ctx context.Context, topics []bus.TopicStats) []deadRow {
	var all []deadRow
	for _, t := range topics {
		if !strings.HasPrefix(t.Name, "$dead.") {
			continue
		}
		c := s.dead[t.Name]
		if c == nil || c.epoch != t.Epoch {
			c = &deadCache{epoch: t.Epoch}
			s.dead[t.Name] = c
		}
		if t.Last > c.last {
			s.readDead(ctx, t, c)
		}
		for _, r := range c.rows {
			r.Redriven = s.redriven[r.Key]
			all = append(all, r)
		}
	}
	if all == nil {
		all = []deadRow{}
	}
	slices.SortFunc(all, func(a, b deadRow) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(a.DeadTopic, b.DeadTopic), cmp.Compare(b.Seq, a.Seq))
	})
	return all[:min(len(all), s.deadMax)]
}

// readDead reads the dead letters of t after c.last, at most deadMax.
func (s *snapshotter) readDead(ctx context.Context, t bus.TopicStats, c *deadCache) {
	from := max(c.last+1, t.Last-min(t.Last, uint64(s.deadMax))+1)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	msgs, err := s.b.Read(ctx, t.Name, from, s.deadMax)
	if errors.Is(err, bus.ErrNotCovered) && t.History > 0 {
		// The history starts later: read what the ring holds.
		from = max(from, t.Last-uint64(t.History)+1)
		msgs, err = s.b.Read(ctx, t.Name, from, s.deadMax)
	}
	if err != nil {
		if errors.Is(err, bus.ErrNotCovered) {
			c.last = t.Last // nothing left to read up to here
		}
		return
	}
	for _, m := range msgs {
		if row, ok := deadRowOf(t.Name, m); ok {
			c.rows = append(c.rows, row)
		}
		c.last = max(c.last, m.Seq())
	}
	if n := len(c.rows) - s.deadMax; n > 0 {
		c.rows = slices.Delete(c.rows, 0, n)
	}
}

// deadLetterOf decodes a message of a dead-letter topic.
func deadLetterOf(m bus.Message[any]) (bus.DeadLetter, bool) {
	switch v := m.Value.(type) {
	case bus.DeadLetter:
		return v, true
	case *bus.DeadLetter:
		return *v, v != nil
	}
	data, err := m.Data()
	if err != nil {
		return bus.DeadLetter{}, false
	}
	var dl bus.DeadLetter
	if json.Unmarshal(data, &dl) != nil {
		return bus.DeadLetter{}, false
	}
	return dl, true
}

func deadRowOf(deadTopic string, m bus.Message[any]) (deadRow, bool) {
	dl, ok := deadLetterOf(m)
	if !ok {
		return deadRow{}, false
	}
	r := deadRow{
		Key: deadKey(deadTopic, m.Seq()), DeadTopic: deadTopic, Seq: m.Seq(), Topic: dl.Topic, OrigSeq: dl.Seq,
		Time: m.Time(), Attempts: dl.Attempts, Error: dl.Error, Pattern: dl.Pattern, Durable: dl.Durable,
		Headers: dl.Headers, Size: len(dl.Data),
	}
	preview := dl.Data[:min(len(dl.Data), maxDataPreview)]
	if utf8.Valid(dl.Data) {
		for !utf8.Valid(preview) { // cut inside a rune
			preview = preview[:len(preview)-1]
		}
		r.Data = string(preview)
	} else {
		r.Data, r.Binary = base64.StdEncoding.EncodeToString(preview), true
	}
	return r, true
}

func deadKey(deadTopic string, seq uint64) string {
	return deadTopic + "#" + strconv.FormatUint(seq, 10)
}

// redrive publishes the dead letter seq of deadTopic again to its topic,
// with its headers and RedrivenHeader. A second re-drive of the same dead
// letter within the bus's de-duplication window publishes nothing and
// returns the first one's sequence number.
func (s *snapshotter) redrive(ctx context.Context, deadTopic string, seq uint64) (topic string, newSeq uint64, err error) {
	if !strings.HasPrefix(deadTopic, "$dead.") || bus.ValidateTopic(deadTopic) != nil || seq == 0 {
		return "", 0, fmt.Errorf("%w: %q is not a dead letter", errBadRequest, deadKey(deadTopic, seq))
	}
	msgs, err := s.b.Read(ctx, deadTopic, seq, 1)
	if err != nil {
		if errors.Is(err, bus.ErrNotCovered) {
			return "", 0, fmt.Errorf("%w: %s is no longer in history", errNotFound, deadKey(deadTopic, seq))
		}
		return "", 0, err
	}
	if len(msgs) == 0 || msgs[0].Seq() != seq {
		return "", 0, fmt.Errorf("%w: no dead letter %s", errNotFound, deadKey(deadTopic, seq))
	}
	dl, ok := deadLetterOf(msgs[0])
	if !ok || dl.Topic == "" || dl.Data == nil {
		return "", 0, fmt.Errorf("%w: %s does not hold a message to re-drive", errBadRequest, deadKey(deadTopic, seq))
	}
	h := make(map[string]string, len(dl.Headers)+1)
	maps.Copy(h, dl.Headers)
	h[RedrivenHeader] = deadKey(deadTopic, seq)
	pid := fmt.Sprintf("courier-redrive:%s:%d:%d", deadTopic, msgs[0].Position().Epoch, seq)
	newSeq, err = s.b.PublishRaw(ctx, dl.Topic, dl.Data, bus.Headers(h), bus.PublisherID(pid))
	if err != nil {
		return dl.Topic, 0, err
	}
	s.mu.Lock()
	if len(s.redriven) >= maxRedriven {
		clear(s.redriven)
	}
	s.redriven[deadKey(deadTopic, seq)] = newSeq
	s.mu.Unlock()
	return dl.Topic, newSeq, nil
}
