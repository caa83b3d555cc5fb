package lazyfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// platform reports whether this system can serve lazyfs at all.
func platform() error { return nil }

// connNumber returns the number of the FUSE connection mounted at dir, as
// fusectl names it: the kernel's encoding of the mount's device number.
func connNumber(dir string) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, err
	}
	return unix.Major(st.Dev)<<20 | unix.Minor(st.Dev), nil
}

// detach lazily unmounts whatever is mounted at dir; nothing mounted is
// not an error.
func detach(dir string) error {
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("detach %s: %w", dir, err)
	}
	return nil
}

// unmount takes the mount away and waits for its server to end. A busy
// mount is detached and its connection aborted, as a power cut would.
func (m *mount) unmount() error {
	err := unix.Unmount(m.dir, 0)
	if errors.Is(err, unix.EBUSY) {
		if err = unix.Unmount(m.dir, unix.MNT_DETACH); err == nil {
			err = abortConn(m.conn)
		}
	}
	if err != nil && !errors.Is(err, unix.EINVAL) {
		// EINVAL: not mounted (the mount failed half way); the server
		// ends by itself then.
		return fmt.Errorf("unmount %s: %w", m.dir, err)
	}
	m.served.Wait()
	return nil
}

// abortConn aborts FUSE connection conn through fusectl, mounting fusectl
// in a temporary directory when the system has not mounted it.
func abortConn(conn uint32) error {
	const ctl = "/sys/fs/fuse/connections"
	name := fmt.Sprintf("%d/abort", conn)
	if err := os.WriteFile(filepath.Join(ctl, name), []byte("1"), 0); err == nil {
		return nil
	}
	tmp, err := os.MkdirTemp("", "lazyfs-fusectl-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := unix.Mount("fusectl", tmp, "fusectl", 0, ""); err != nil {
		return fmt.Errorf("abort connection %d: mount fusectl: %w", conn, err)
	}
	defer unix.Unmount(tmp, unix.MNT_DETACH)
	if err := os.WriteFile(filepath.Join(tmp, name), []byte("1"), 0); err != nil {
		return fmt.Errorf("abort connection %d: %w", conn, err)
	}
	return nil
}
