//go:build !unix

package persist

import "os"

// lockFile does nothing where flock is missing: Badger's own directory lock
// still refuses a second opener, and Open reports that as ErrLocked.
func lockFile(*os.File) error { return nil }
