package persist

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/courierbus/courier/bus"
)

// Option configures [Open].
type Option interface{ apply(*config) }

// Limits bounds what a topic's log keeps. A zero field means no bound of
// that kind.
type Limits struct {
	// Count is the number of newest records kept.
	Count int64
	// Age is how long a record is kept after its Time.
	Age time.Duration
	// Bytes bounds the total encoded size of the records kept; the oldest
	// go first.
	Bytes int64
}

func (l Limits) zero() bool { return l == Limits{} }

// DefaultMaxRecordSize is the largest encoded record [Store.Append] takes
// unless [MaxRecordSize] says otherwise.
const DefaultMaxRecordSize = 1 << 20

// maxMaxRecordSize bounds MaxRecordSize: far below the value log file size,
// so a record always fits one file.
const maxMaxRecordSize = 16 << 20

type config struct {
	buffered       bool
	logger         *slog.Logger
	maxRecord      int
	defaults       Limits
	rules          []rule // per-prefix overrides
	retentionEvery time.Duration
	gcEvery        time.Duration
	onCommit       func(CommitInfo)
	boot           func() string // names this boot of the machine
}

type rule struct {
	prefix string
	lim    Limits
}

func defaultConfig() config {
	return config{
		logger:         slog.New(slog.DiscardHandler),
		maxRecord:      DefaultMaxRecordSize,
		retentionEvery: 10 * time.Second,
		gcEvery:        time.Minute,
		boot:           bootID,
	}
}

func (c *config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("persist: open: %w: %s", bus.ErrInvalidOption, fmt.Sprintf(format, args...))
	}
	if c.maxRecord <= 0 || c.maxRecord > maxMaxRecordSize {
		return bad("MaxRecordSize %d outside 1..%d", c.maxRecord, maxMaxRecordSize)
	}
	if c.retentionEvery <= 0 {
		return bad("RetentionInterval %v must be positive", c.retentionEvery)
	}
	check := func(what string, l Limits) error {
		if l.Count < 0 || l.Age < 0 || l.Bytes < 0 {
			return bad("%s: negative limit %+v", what, l)
		}
		return nil
	}
	if err := check("Retain", c.defaults); err != nil {
		return err
	}
	for _, r := range c.rules {
		if r.prefix == "" || strings.HasSuffix(r.prefix, ".") {
			return bad("RetainTopics prefix %q must be a non-empty topic name", r.prefix)
		}
		if err := check(fmt.Sprintf("RetainTopics(%q)", r.prefix), r.lim); err != nil {
			return err
		}
	}
	return nil
}

// limits returns the limits that apply to topic: those of the longest
// matching RetainTopics prefix, else the Retain default.
func (c *config) limits(topic string) Limits {
	lim, best := c.defaults, -1
	for _, r := range c.rules {
		if len(r.prefix) > best && matches(r.prefix, topic) {
			lim, best = r.lim, len(r.prefix)
		}
	}
	return lim
}

// anyLimits reports whether some topic may have a limit.
func (c *config) anyLimits() bool {
	if !c.defaults.zero() {
		return true
	}
	for _, r := range c.rules {
		if !r.lim.zero() {
			return true
		}
	}
	return false
}

func matches(prefix, topic string) bool {
	return strings.HasPrefix(topic, prefix) && (len(topic) == len(prefix) || topic[len(prefix)] == '.')
}

type buffered struct{}

func (buffered) apply(c *config) { c.buffered = true }

// Buffered makes [Store.Append] return once the record is committed to the
// operating system, without waiting for the disk: what it acknowledged
// survives a crash of the process but not a power cut or a kernel crash.
// Without it (the default) each batch of appends is flushed to the disk with
// fsync before any of them returns.
func Buffered() Option { return buffered{} }

type loggerOption struct{ l *slog.Logger }

func (o loggerOption) apply(c *config) {
	if o.l != nil {
		c.logger = o.l
	}
}

// WithLogger sends the store's log, and Badger's, to l: Badger's errors,
// warnings, information and debug messages at the matching slog levels,
// with the attribute component=badger. Default: nothing is logged.
func WithLogger(l *slog.Logger) Option { return loggerOption{l} }

type maxRecordSize int

func (o maxRecordSize) apply(c *config) { c.maxRecord = int(o) }

// MaxRecordSize sets the largest encoded record (data, headers and
// routing fields together) that [Store.Append] accepts; larger ones fail
// with [ErrTooLarge]. Default [DefaultMaxRecordSize] (1 MiB); at most 16 MiB.
func MaxRecordSize(n int) Option { return maxRecordSize(n) }

type retain struct {
	topics bool // RetainTopics, not Retain
	prefix string
	lim    Limits
}

func (o retain) apply(c *config) {
	if !o.topics {
		c.defaults = o.lim
		return
	}
	for i, r := range c.rules {
		if r.prefix == o.prefix {
			c.rules[i].lim = o.lim
			return
		}
	}
	c.rules = append(c.rules, rule{o.prefix, o.lim})
}

// Retain sets the limits of every topic that no [RetainTopics] covers.
// Default: no limits, every record is kept.
//
// The Count limit holds at once: a read below the newest Count records
// fails with bus.ErrNotCovered as soon as the record that pushed them out is
// appended. Age and Bytes, and the deletion of what Count dropped, are
// applied by a background pass every [RetentionInterval].
func Retain(l Limits) Option { return retain{lim: l} }

// RetainTopics sets the limits of the topic named prefix and of every topic
// below it ("chat" covers "chat" and "chat.room1", not "chatter"). The
// longest matching prefix wins, and its Limits replace the default whole: a
// zero field there means no bound, not the default's.
func RetainTopics(prefix string, l Limits) Option {
	return retain{topics: true, prefix: prefix, lim: l}
}

type retentionInterval time.Duration

func (o retentionInterval) apply(c *config) { c.retentionEvery = time.Duration(o) }

// RetentionInterval sets how often the background pass deletes records past
// their topic's limits. Default 10 seconds.
func RetentionInterval(d time.Duration) Option { return retentionInterval(d) }

// CommitInfo describes one committed batch, for [OnCommit]. It is
// [bus.CommitInfo], so that observe reads it without importing persist.
type CommitInfo = bus.CommitInfo

type onCommitOption struct{ f func(CommitInfo) }

func (o onCommitOption) apply(c *config) { c.onCommit = o.f }

// OnCommit calls f after every committed batch, on the store's writer
// goroutine: f must return quickly (update a metric, no I/O). Package
// observe uses it for its batch-size and commit-latency histograms.
func OnCommit(f func(CommitInfo)) Option { return onCommitOption{f} }

// bootOption names the machine's boot for a test, which simulates a reboot
// by changing it (see lastRun).
type bootOption string

func (o bootOption) apply(c *config) { c.boot = func() string { return string(o) } }
