package persist

import (
	"errors"
	"syscall"
)

// dirWatch tells whether names were created in a directory since it was
// last asked: an inotify instance watching for creations and renames into
// the directory, read without blocking. The kernel queues an event within
// the call that made the name, so a name made before changed is called is
// always seen by it.
type dirWatch struct{ fd int }

func watchDir(dir string) (*dirWatch, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO|syscall.IN_ONLYDIR); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return &dirWatch{fd: fd}, nil
}

// changed reports whether a name was created or moved into the directory
// since the last call, and forgets the events it read. On an error it
// reports true: the caller then syncs the directory, which is never wrong.
func (w *dirWatch) changed() bool {
	var buf [4096]byte
	seen := false
	for {
		n, err := syscall.Read(w.fd, buf[:])
		switch {
		case n > 0:
			seen = true
			continue
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return seen
		default:
			return true
		}
	}
}

func (w *dirWatch) close() error { return syscall.Close(w.fd) }
