package lazyfs

import (
	"fmt"
	"maps"
	"path"
	"sync"
	"syscall"
	"time"
)

// server is the file system itself: the model and its FUSE mounts, in the
// process that serves it. Its methods are safe for concurrent use.
type server struct {
	dir  string
	rule Rule
	goOn bool // requests keep succeeding after a cut (ContinueAfterCut)

	life sync.Mutex // serializes mounting and unmounting

	mu      sync.Mutex
	root    *inode
	nextIno uint64
	nsDirty map[*inode]struct{} // directories whose entries differ from their durable ones
	cut     bool
	armed   string // CutAfterSync pattern, "" when not armed
	mnt     *mount // the live mount; nil while unmounted
	closed  bool
	stats   Stats
}

// newServer mounts an empty file system at dir and serves it from this
// process until unmount.
func newServer(dir string, rule Rule, goOn bool) (*server, error) {
	now := time.Now()
	f := &server{
		dir:     dir,
		rule:    rule,
		goOn:    goOn,
		root:    newInode(1, syscall.S_IFDIR|0o755, 0, 0, now),
		nextIno: 2,
		nsDirty: map[*inode]struct{}{},
	}
	if err := f.mountLocked(); err != nil {
		return nil, err
	}
	return f, nil
}

// powerCut cuts the power now (see [FS.Cut]).
func (f *server) powerCut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cutLocked()
}

func (f *server) cutLocked() {
	if !f.cut {
		f.cut = true
		f.armed = ""
		f.stats.Cuts++
	}
}

// arm arms a cut after the next fsync of a name matching the valid pattern
// (see [FS.CutAfterSync]).
func (f *server) arm(pattern string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.cut {
		f.armed = pattern
	}
}

func (f *server) isCut() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut
}

func (f *server) snapshot() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// restart cuts, unmounts, rolls back and mounts again (see [FS.Restart]).
func (f *server) restart() error {
	f.life.Lock()
	defer f.life.Unlock()
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrUnmounted
	}
	f.cutLocked()
	old := f.mnt
	f.mnt = nil
	f.mu.Unlock()
	if old != nil {
		if err := old.unmount(); err != nil {
			return fmt.Errorf("lazyfs: restart: %w", err)
		}
	}
	f.mu.Lock()
	f.rollbackLocked()
	f.cut = false
	f.mu.Unlock()
	if err := f.mountLocked(); err != nil {
		return err // it names the mount
	}
	f.mu.Lock()
	f.stats.Restarts++
	f.mu.Unlock()
	return nil
}

// unmount unmounts for good (see [FS.Unmount]).
func (f *server) unmount() error {
	f.life.Lock()
	defer f.life.Unlock()
	f.mu.Lock()
	old := f.mnt
	f.mnt = nil
	f.closed = true
	f.mu.Unlock()
	if old == nil {
		return nil
	}
	if err := old.unmount(); err != nil {
		return fmt.Errorf("lazyfs: unmount: %w", err)
	}
	return nil
}

// rollbackLocked replaces the current views by the durable ones. Only
// what the durable tree reaches is kept.
func (f *server) rollbackLocked() {
	var pages, files, restored uint64
	seen := map[*inode]bool{}
	var walk func(in *inode)
	walk = func(in *inode) {
		if seen[in] {
			return
		}
		seen[in] = true
		if in.isDir() {
			for name, k := range in.durKids {
				if in.kids[name] != k {
					restored++
				}
				walk(k)
			}
			return
		}
		pages += uint64(in.data.rollback())
	}
	walk(f.root)
	// Whatever the current tree reaches that the durable one does not is
	// gone; count it before the current entries are replaced.
	var count func(in *inode)
	count = func(in *inode) {
		for _, k := range in.kids {
			if !seen[k] {
				seen[k] = true
				files++
			}
			if k.isDir() {
				count(k)
			}
		}
	}
	count(f.root)
	for in := range seen {
		if in.isDir() {
			in.kids = maps.Clone(in.durKids)
		}
	}
	clear(f.nsDirty)
	f.stats.DroppedPages = pages
	f.stats.DroppedFiles = files
	f.stats.RestoredNames = restored
}

// checkLocked answers EIO for requests that come from a mount other than
// the live one, or after a cut unless the file system goes on after one.
func (f *server) checkLocked(m *mount) syscall.Errno {
	if f.cut && !f.goOn || m != f.mnt {
		f.stats.Refused++
		return syscall.EIO
	}
	return 0
}

// syncedLocked is called after a successful fsync of in, named name; it
// applies the rule and an armed cut.
func (f *server) syncedLocked(in *inode, name string) {
	if f.cut {
		f.stats.FsyncsAfterCut++ // nothing becomes durable any more
		return
	}
	if in.isDir() {
		f.stats.Fsyncdirs++
		in.syncEntries()
		delete(f.nsDirty, in)
	} else {
		f.stats.Fsyncs++
		in.data.sync()
	}
	if f.rule == RuleExt4 {
		for d := range f.nsDirty {
			d.syncEntries()
		}
		clear(f.nsDirty)
	}
	if f.armed != "" {
		if ok, _ := path.Match(f.armed, name); ok {
			f.cutLocked()
		}
	}
}
