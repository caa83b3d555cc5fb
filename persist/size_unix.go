//go:build unix

package persist

import (
	"io/fs"
	"syscall"
)

// allocated returns the space fi's file takes on disk: Badger's logs are
// sparse files made at their full size and filled as it writes.
func allocated(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}
