package lazyfs

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"sync"
	"syscall"
	"time"
)

// Rule says which fsyncs make namespace operations (create, mkdir, unlink,
// rmdir, rename) durable.
type Rule int

const (
	// RulePOSIX makes a directory's entries durable only when that
	// directory is fsync'd (FSYNCDIR). This is all POSIX promises.
	RulePOSIX Rule = iota
	// RuleExt4 makes every pending namespace operation of the whole file
	// system durable on any fsync of a file or a directory, as ext4's
	// journal (data=ordered) does. Other files' data still needs their own
	// fsync.
	RuleExt4
)

// String returns "posix" or "ext4".
func (r Rule) String() string {
	switch r {
	case RulePOSIX:
		return "posix"
	case RuleExt4:
		return "ext4"
	}
	return fmt.Sprintf("Rule(%d)", int(r))
}

// ErrUnmounted is returned by Restart after Unmount.
var ErrUnmounted = errors.New("lazyfs: unmounted")

// Stats counts what the file system did. Counters run over the life of the
// FS; the Dropped fields describe the last Restart.
type Stats struct {
	Fsyncs    uint64 // successful FSYNCs of regular files
	Fsyncdirs uint64 // successful FSYNCDIRs (and FSYNCs) of directories
	Writes    uint64 // successful WRITE requests
	Cuts      uint64 // power cuts, by Cut, CutAfterSync or Restart
	Restarts  uint64 // successful Restarts
	Refused   uint64 // requests answered EIO because the power was cut

	DroppedPages uint64 // pages written and not fsync'd, undone by the last Restart
	DroppedFiles uint64 // files and directories that had a name only in the current view
}

// FS is an in-memory FUSE file system that loses, at a power cut, whatever
// was not fsync'd. Its methods are safe for concurrent use.
type FS struct {
	dir  string
	rule Rule

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

// New mounts an empty file system at dir, which must exist, and serves it
// from this process until Unmount. Tests should use [Mount], which skips the
// test when FUSE is unusable.
func New(dir string, rule Rule) (*FS, error) {
	if rule != RulePOSIX && rule != RuleExt4 {
		return nil, fmt.Errorf("lazyfs: unknown rule %d", int(rule))
	}
	now := time.Now()
	f := &FS{
		dir:     dir,
		rule:    rule,
		root:    newInode(1, syscall.S_IFDIR|0o755, 0, 0, now),
		nextIno: 2,
		nsDirty: map[*inode]struct{}{},
	}
	if err := f.mountLocked(); err != nil {
		return nil, err
	}
	return f, nil
}

// Dir returns the mount point.
func (f *FS) Dir() string { return f.dir }

// Rule returns the rule the file system was mounted with.
func (f *FS) Rule() Rule { return f.rule }

// Cut cuts the power now: the durable state is frozen, and every later
// request fails with EIO (reads the kernel answers from its page cache
// excepted) until Restart. Cutting twice is the same as cutting once.
func (f *FS) Cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cutLocked()
}

func (f *FS) cutLocked() {
	if !f.cut {
		f.cut = true
		f.armed = ""
		f.stats.Cuts++
	}
}

// CutAfterSync arms a cut that happens right after the next successful fsync
// of a file, or fsync of a directory, whose base name matches pattern (see
// [path.Match]). That fsync itself succeeds and its effect is durable;
// everything after it fails with EIO. A later call replaces the pattern;
// Cut and Restart disarm it. It panics if pattern is malformed.
func (f *FS) CutAfterSync(pattern string) {
	if _, err := path.Match(pattern, ""); err != nil {
		panic(fmt.Sprintf("lazyfs: CutAfterSync(%q): %v", pattern, err))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.cut {
		f.armed = pattern
	}
}

// IsCut reports whether the power is cut (by Cut or an armed CutAfterSync)
// and the file system not yet restarted.
func (f *FS) IsCut() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut
}

// Stats returns a snapshot of the counters.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Restart brings the file system back after a power cut, cutting first if
// the power is still on: it unmounts (lazily when the mount is busy, aborting
// the connection so that processes still using the old mount get errors and
// the old server ends), replaces every current view by its durable view,
// and mounts again at the same directory. Processes that used the old mount
// should have been killed; descriptors still open on it keep failing.
func (f *FS) Restart() error {
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
		return fmt.Errorf("lazyfs: restart: %w", err)
	}
	f.mu.Lock()
	f.stats.Restarts++
	f.mu.Unlock()
	return nil
}

// Unmount unmounts the file system (lazily if busy) and waits for its
// server to end. Later calls return nil; the content is lost.
func (f *FS) Unmount() error {
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
func (f *FS) rollbackLocked() {
	var pages, files uint64
	seen := map[*inode]bool{}
	var walk func(in *inode)
	walk = func(in *inode) {
		if seen[in] {
			return
		}
		seen[in] = true
		if in.isDir() {
			for _, k := range in.durKids {
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
}

// checkLocked answers EIO for requests that come from a mount other than
// the live one or after a cut.
func (f *FS) checkLocked(m *mount) syscall.Errno {
	if f.cut || m != f.mnt {
		f.stats.Refused++
		return syscall.EIO
	}
	return 0
}

// syncedLocked is called after a successful fsync of in, named name; it
// applies the rule and an armed cut.
func (f *FS) syncedLocked(in *inode, name string) {
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
