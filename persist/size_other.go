//go:build !unix

package persist

import "io/fs"

// allocated returns fi's size: where the allocated size is not known, the
// apparent one.
func allocated(fi fs.FileInfo) int64 { return fi.Size() }
