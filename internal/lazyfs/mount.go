package lazyfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// mount is one FUSE mount of the file system. Nodes remember the mount
// they were made for; requests through a mount that is no longer live fail.
type mount struct {
	dir    string
	srv    *fuse.Server
	conn   uint32 // the FUSE connection number, as named in fusectl
	served sync.WaitGroup
}

// cacheTimeout is how long the kernel may keep entries and attributes. The
// server is the only writer, so the caches stay right within one mount.
const cacheTimeout = time.Second

// mountLocked mounts the file system at f.dir. The caller holds f.life.
func (f *server) mountLocked() error {
	m := &mount{dir: f.dir}
	timeout := cacheTimeout
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			DirectMountStrict: true,
			FsName:            "lazyfs",
			Name:              "lazyfs",
			DisableXAttrs:     true,
			MaxWrite:          1 << 20,
		},
		EntryTimeout:   &timeout,
		AttrTimeout:    &timeout,
		RootStableAttr: &fs.StableAttr{Ino: f.root.ino, Mode: syscall.S_IFDIR},
	}
	raw := fs.NewNodeFS(&node{f: f, m: m, in: f.root}, opts)
	srv, err := fuse.NewServer(raw, f.dir, &opts.MountOptions)
	if err != nil {
		return fmt.Errorf("lazyfs: mount %s: %w", f.dir, err)
	}
	m.srv = srv
	f.mu.Lock()
	f.mnt = m
	f.mu.Unlock()
	m.served.Add(1)
	go func() {
		defer m.served.Done()
		srv.Serve()
	}()
	err = srv.WaitMount()
	if err == nil {
		var st unix.Stat_t
		if err = unix.Stat(f.dir, &st); err == nil {
			m.conn = unix.Major(st.Dev)<<20 | unix.Minor(st.Dev)
		}
	}
	if err != nil {
		f.mu.Lock()
		f.mnt = nil
		f.mu.Unlock()
		uerr := m.unmount()
		return errors.Join(fmt.Errorf("lazyfs: mount %s: %w", f.dir, err), uerr)
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
