// Package observe lets operators see a Courier bus: Prometheus metrics of
// what flows and what is stuck, and an admin page that shows topics, rooms,
// sessions and dead letters live and lets an operator act on them.
//
// # Metrics
//
// A [Collector] is a prometheus.Collector that reads the counters of a bus
// (and, with [WithBridge] and [WithStore], of a bridge and a persist store)
// when it is scraped. Nothing is counted on the publish path: the bus, the
// bridge and the store keep their own counters, and the collector takes a
// snapshot of them per scrape.
//
//	col, err := observe.NewCollector(b, observe.WithBridge(br), observe.WithStore(st))
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(col)
//	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Persist's commit batch sizes and latencies are histograms filled by
// persist's OnCommit hook, once per committed batch; make a [Commits]
// before opening the store:
//
//	commits := observe.NewCommits()
//	st, err := persist.Open(dir, persist.OnCommit(commits.Observe))
//	...
//	col, err := observe.NewCollector(b, observe.WithStore(st), observe.WithCommits(commits))
//
// Package observe does not import persist: [WithStore] takes a [Store],
// an interface of the one method it calls, which persist's *Store has, and
// [Commits.Observe] takes a bus.CommitInfo, which persist.CommitInfo is.
// Metrics of a bus kept in memory bring neither persist nor Badger into
// the program.
//
// Every name starts with courier_, counters end in _total, times are in
// seconds and sizes in bytes. Labels are bounded: a topic label per topic
// (the bus's own "$rooms.<room>" and "$dead.<topic>" topics fold into
// "$rooms" and "$dead"; [TopicLabel] maps names further; past [MaxLabels]
// distinct values the rest share "$other"), a pattern label per
// subscription pattern under the same rules, and the bridge's error codes.
// Nothing is labelled per message, per client or per session.
//
// # Admin page
//
// An [Admin] is an http.Handler that the host mounts on its own mux, at a
// path ending in "/", behind an authorization hook it must be given
// ([Authorize] or [BasicAuth]); without one it refuses every request.
//
//	admin, err := observe.NewAdmin(b, observe.WithBridge(br), observe.BasicAuth("admin", password))
//	defer admin.Close()
//	mux.Handle("/admin/", admin)
//
// The page shows topics with their publish and delivery rates,
// subscriptions with their queues and unacknowledged messages, rooms and
// their members, the bridge's connections and sessions, and the newest
// dead letters with their last error. It updates itself through a bridge
// of its own, with the browser client courier.js: the admin pushes a
// snapshot to each open page several times a second (see [Interval]), as
// a bridge request that the page answers once it has drawn it, so a slow
// page is never flooded. The page is plain HTML, CSS and an ES module
// embedded in the package: no build step and no external assets.
//
// From the page an operator can re-drive a dead letter (its data is
// published again to its topic, with its headers and a
// "courier-redriven-from" header, at most once per dead letter within the
// bus's de-duplication window), remove a member from a room, and
// disconnect a client, which then resumes its session. Each action is an
// HTTP POST that passes the same hook, must come from the page's origin,
// and is logged with the user the hook named.
package observe
