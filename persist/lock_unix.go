//go:build unix

package persist

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive, non-blocking flock on f. The lock belongs
// to the open file, so a second Open in the same process conflicts too; it
// goes away with the file, also when the process dies.
func lockFile(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return fmt.Errorf("%w: %s is locked", ErrLocked, f.Name())
		default:
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
	}
}
