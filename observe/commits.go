package observe

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/courierbus/courier/bus"
)

// Commits holds the histograms of a persist store's committed batches: how
// many changes each batch carried and how long its commit took. Persist
// fills them through its OnCommit hook, once per batch, on its writer
// goroutine; appends themselves cost nothing more. Make one with
// [NewCommits] before opening the store, pass [Commits.Observe] to
// persist.OnCommit, and export it with [WithCommits] (or register it: it is
// a prometheus.Collector itself). It is safe for concurrent use.
type Commits struct {
	size    prometheus.Histogram
	latency prometheus.Histogram
	bytes   prometheus.Counter
}

// NewCommits returns empty commit histograms:
//
//   - courier_persist_commit_batch_ops: changes per batch, buckets 1, 2, 4 … 4096
//     (the writer's largest batch);
//   - courier_persist_commit_duration_seconds: commit time, fsync included
//     when synced, buckets 50µs doubling to about 1.6s;
//   - courier_persist_committed_bytes_total: about how many bytes the
//     batches wrote.
func NewCommits() *Commits {
	return &Commits{
		size: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "courier_persist_commit_batch_ops",
			Help:    "Changes (appends and consumer positions) per committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13),
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "courier_persist_commit_duration_seconds",
			Help:    "Time to commit a batch, fsync included when the store is synced.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "courier_persist_committed_bytes_total",
			Help: "About how many bytes the committed batches wrote.",
		}),
	}
}

// Observe records one committed batch. Pass it to persist.OnCommit.
func (c *Commits) Observe(ci bus.CommitInfo) {
	c.size.Observe(float64(ci.Ops))
	c.latency.Observe(ci.Duration.Seconds())
	c.bytes.Add(float64(max(ci.Bytes, 0)))
}

// Describe implements prometheus.Collector.
func (c *Commits) Describe(ch chan<- *prometheus.Desc) {
	c.size.Describe(ch)
	c.latency.Describe(ch)
	c.bytes.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Commits) Collect(ch chan<- prometheus.Metric) {
	c.size.Collect(ch)
	c.latency.Collect(ch)
	c.bytes.Collect(ch)
}
