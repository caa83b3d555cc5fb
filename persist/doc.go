// Package persist keeps a Courier bus's topic logs and durable consumer
// positions on disk, in a Badger v4 database: a [bus.Store] that outlives the
// process.
//
// # Use
//
// Open a directory, hand the store to the bus, and close the store after the
// bus (the bus does not close a store it was given):
//
//	st, err := persist.Open(dir)
//	if err != nil { ... }
//	defer st.Close()
//	b, err := bus.New(bus.WithStore(st))
//	if err != nil { ... }
//	defer b.Close()
//
// The directory is created when missing. A directory that another store has
// open, in this process or another, is refused with [ErrLocked]; a non-empty
// directory that is not a Courier store is refused with [ErrNotStore] and
// left untouched.
//
// # Durability
//
// [Store.Append] returns once the record is committed. Appends from
// concurrent callers are committed together by one writer goroutine (group
// commit): each batch is one Badger transaction, so the fsync that makes it
// durable is paid once per batch, not once per record.
//
// Synced (the default): each batch is on disk before any of its Append
// calls return: Badger's value log (where records of a MiB and more go)
// and then its memtable log are fsynced, and the directory too whenever a
// file was created in it since its last sync, so that nothing durable
// points at what is not and every file that holds the batch can be found.
// What Append acknowledged survives a crash of the process, of the kernel
// and a power cut.
//
// [Buffered]: Append returns after the commit, without the sync. What it
// acknowledged survives a crash of the process (Badger's log is a shared
// memory map that the kernel writes out) but a power cut or kernel crash
// may lose the last moments, from the end of each topic's log. Throughput
// is several times higher.
//
// A sequence number Append returned is never given to another record under
// the same epoch, also across restarts: the topic's last sequence number
// is committed in the same transaction as the record. A store notes, while
// it is open, its mode and the machine's boot; when a buffered store was
// not closed and the machine has booted since, Open gives every topic a
// new epoch, since what it acknowledged last may be gone.
//
// # Recovery
//
// Open repairs what a crash can leave. Records left unreadable at the end
// of a topic's log (a synced store never acknowledged them: their bytes did
// not all reach the disk) are dropped, with a warning and a count in
// [Stats].Dropped, and the topic gets a new epoch. A table Badger listed in
// its manifest just before a power cut, whose file name did not reach the
// disk, is dropped from the manifest; its records are replayed from the
// memtable log it was built from, which is still there. If a batch fails, every
// Append in it returns the error and no sequence number is used up. If a
// sync fails the store refuses further writes, since the disk's state is
// then unknown; reopen it. The batch whose sync failed was committed, so
// its records may be there after reopening: an error from Append means the
// record is not known to be durable, not that it is absent.
//
// Durable consumer positions ([Store.SaveConsumer]) go through the same
// writer and are as durable as appends.
//
// # Retention
//
// By default every record is kept. [Retain] bounds every topic by count,
// age and bytes; [RetainTopics] overrides that for a topic and the topics
// below it. A read below what a topic still holds fails with
// bus.ErrNotCovered. A background pass deletes what the limits drop
// (see [RetentionInterval]) and Badger's value-log garbage collection runs
// every minute.
//
// # On disk
//
// Each topic has a log keyed by big-endian sequence number, so a read seeks
// straight to its first record, and a metadata key holding its epoch (a
// random non-zero number fixed when the topic is created), its first and
// last sequence numbers and its size. Records are encoded in a compact,
// versioned binary format; a value that does not decode is reported as
// [ErrCorrupt] with its key, never a panic, and leaves other keys readable.
// The file COURIER marks the directory as a store.
//
// # Memory
//
// Badger runs with a small-memory profile rather than its server defaults;
// see [Open] for the figures.
package persist
