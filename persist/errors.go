package persist

import "errors"

var (
	// ErrLocked is returned by [Open] when another process, or another
	// [Store] in this process, has the directory open.
	ErrLocked = errors.New("persist: directory in use by another store")

	// ErrNotStore is returned by [Open] when the path is not a directory, or
	// is a non-empty directory without Courier's marker file (so it holds
	// something else, which Open leaves alone), or holds a store of a format
	// this version does not know.
	ErrNotStore = errors.New("persist: not a courier store")

	// ErrTooLarge is returned by [Store.Append] when the encoded record is
	// larger than the store's maximum record size (see [MaxRecordSize]).
	// Nothing is written; the store stays usable.
	ErrTooLarge = errors.New("persist: record too large")

	// ErrCorrupt is returned when a value read from disk cannot be decoded:
	// by [Store.Read], [Store.SeqAt] and [Store.Consumer] for the key
	// concerned, and by any call that needs a topic whose metadata is bad.
	// The error text names the key. Other keys stay readable.
	ErrCorrupt = errors.New("persist: corrupt data")
)
