package bus

import "time"

// StoreStats is a snapshot of the counters of a [Store] that commits its
// writes in batches, as persist's does (persist.Stats is this type). It is
// declared here, beside the Store interface, so that a package that reads a
// store's counters (observe) needs to import only bus.
type StoreStats struct {
	Batches  uint64 // committed batches
	Ops      uint64 // changes committed in them: appends and consumer positions
	LSMBytes int64  // disk space of the index and of records under a MiB (persist: Badger's tables and memtable logs)
	LogBytes int64  // disk space of larger records (persist: Badger's value logs)
	Failed   bool   // a sync failed: the store refuses writes until reopened
	// Dropped counts the records the store dropped as it opened because a
	// crash left them unreadable at the end of their topic's log (none was
	// acknowledged by a synced store); each such topic got a new epoch.
	Dropped uint64
}

// CommitInfo describes one batch a [Store] committed (persist.CommitInfo
// is this type, given to persist's OnCommit hook).
type CommitInfo struct {
	// Ops is the number of changes committed together: appends and
	// consumer positions.
	Ops int
	// Bytes is about how many bytes the batch wrote.
	Bytes int64
	// Duration is how long the commit took, fsync included when synced.
	Duration time.Duration
}
