package lazyfs

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
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
			MaxWrite:          128 << 10,
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
		m.conn, err = connNumber(f.dir)
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
