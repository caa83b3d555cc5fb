package lazyfs

import (
	"context"
	"slices"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is the go-fuse face of an inode within one mount. Every method takes
// f.mu; none calls into go-fuse while holding it.
type node struct {
	fs.Inode
	f  *server
	m  *mount
	in *inode
}

var (
	_ fs.NodeLookuper  = (*node)(nil)
	_ fs.NodeGetattrer = (*node)(nil)
	_ fs.NodeSetattrer = (*node)(nil)
	_ fs.NodeReaddirer = (*node)(nil)
	_ fs.NodeCreater   = (*node)(nil)
	_ fs.NodeMknoder   = (*node)(nil)
	_ fs.NodeMkdirer   = (*node)(nil)
	_ fs.NodeUnlinker  = (*node)(nil)
	_ fs.NodeRmdirer   = (*node)(nil)
	_ fs.NodeRenamer   = (*node)(nil)
	_ fs.NodeOpener    = (*node)(nil)
	_ fs.NodeReader    = (*node)(nil)
	_ fs.NodeWriter    = (*node)(nil)
	_ fs.NodeFsyncer   = (*node)(nil)
	_ fs.NodeFlusher   = (*node)(nil)
	_ fs.NodeReleaser  = (*node)(nil)
	_ fs.NodeStatfser  = (*node)(nil)
	_ fs.NodeAllocater = (*node)(nil)
	_ fs.NodeOpendirer = (*node)(nil)
)

// lock takes f.mu and checks that the request may proceed; on a non-zero
// answer the lock is not held.
func (n *node) lock() syscall.Errno {
	n.f.mu.Lock()
	if errno := n.f.checkLocked(n.m); errno != 0 {
		n.f.mu.Unlock()
		return errno
	}
	return 0
}

func (n *node) unlock() { n.f.mu.Unlock() }

// child makes the go-fuse node for in; called without f.mu.
func (n *node) child(ctx context.Context, in *inode) *fs.Inode {
	return n.NewInode(ctx, &node{f: n.f, m: n.m, in: in},
		fs.StableAttr{Mode: in.mode & syscall.S_IFMT, Ino: in.ino})
}

// Lookup finds name in the directory's current entries.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.lock(); errno != 0 {
		return nil, errno
	}
	k := n.in.kids[name]
	if k == nil {
		n.unlock()
		return nil, syscall.ENOENT
	}
	k.fill(&out.Attr)
	n.unlock()
	return n.child(ctx, k), 0
}

// Getattr reports the current attributes.
func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := n.lock(); errno != 0 {
		return errno
	}
	defer n.unlock()
	n.in.fill(&out.Attr)
	return 0
}

// Setattr changes size, mode, owner and times; a size change touches only
// the current view.
func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := n.lock(); errno != 0 {
		return errno
	}
	defer n.unlock()
	now := time.Now()
	if size, ok := in.GetSize(); ok {
		if n.in.isDir() {
			return syscall.EISDIR
		}
		n.in.data.truncate(int64(size))
		n.in.mtime = now
	}
	if mode, ok := in.GetMode(); ok {
		n.in.mode = n.in.mode&syscall.S_IFMT | mode&0o7777
	}
	if uid, ok := in.GetUID(); ok {
		n.in.uid = uid
	}
	if gid, ok := in.GetGID(); ok {
		n.in.gid = gid
	}
	if t, ok := in.GetATime(); ok {
		n.in.atime = t
	}
	if t, ok := in.GetMTime(); ok {
		n.in.mtime = t
	}
	n.in.ctime = now
	n.in.fill(&out.Attr)
	return 0
}

// Opendir checks that the power is on.
func (n *node) Opendir(ctx context.Context) syscall.Errno {
	if errno := n.lock(); errno != 0 {
		return errno
	}
	n.unlock()
	return 0
}

// Readdir lists the current entries in name order.
func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	if errno := n.lock(); errno != 0 {
		return nil, errno
	}
	defer n.unlock()
	list := make([]fuse.DirEntry, 0, len(n.in.kids))
	for name, k := range n.in.kids {
		list = append(list, fuse.DirEntry{Name: name, Ino: k.ino, Mode: k.mode & syscall.S_IFMT})
	}
	slices.SortFunc(list, func(a, b fuse.DirEntry) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return fs.NewListDirStream(list), 0
}

// addLocked creates a new inode named name in the directory's current view.
func (n *node) addLocked(ctx context.Context, name string, mode uint32) (*inode, syscall.Errno) {
	if !n.in.isDir() {
		return nil, syscall.ENOTDIR
	}
	if n.in.kids[name] != nil {
		return nil, syscall.EEXIST
	}
	var uid, gid uint32
	if c, ok := fuse.FromContext(ctx); ok {
		uid, gid = c.Uid, c.Gid
	}
	now := time.Now()
	in := newInode(n.f.nextIno, mode, uid, gid, now)
	n.f.nextIno++
	n.in.kids[name] = in
	n.in.mtime, n.in.ctime = now, now
	n.f.nsDirty[n.in] = struct{}{}
	return in, 0
}

// Create makes a regular file.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if errno := n.lock(); errno != 0 {
		return nil, nil, 0, errno
	}
	in, errno := n.addLocked(ctx, name, syscall.S_IFREG|mode&0o7777)
	if errno != 0 {
		n.unlock()
		return nil, nil, 0, errno
	}
	in.fill(&out.Attr)
	n.unlock()
	return n.child(ctx, in), nil, 0, 0
}

// Mknod makes a regular file; other kinds are not supported.
func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, syscall.EPERM
	}
	if errno := n.lock(); errno != 0 {
		return nil, errno
	}
	in, errno := n.addLocked(ctx, name, syscall.S_IFREG|mode&0o7777)
	if errno != 0 {
		n.unlock()
		return nil, errno
	}
	in.fill(&out.Attr)
	n.unlock()
	return n.child(ctx, in), 0
}

// Mkdir makes a directory.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.lock(); errno != 0 {
		return nil, errno
	}
	in, errno := n.addLocked(ctx, name, syscall.S_IFDIR|mode&0o7777)
	if errno != 0 {
		n.unlock()
		return nil, errno
	}
	in.fill(&out.Attr)
	n.unlock()
	return n.child(ctx, in), 0
}

// removeLocked takes name out of the directory's current view.
func (n *node) removeLocked(name string, dir bool) syscall.Errno {
	k := n.in.kids[name]
	switch {
	case k == nil:
		return syscall.ENOENT
	case dir && !k.isDir():
		return syscall.ENOTDIR
	case !dir && k.isDir():
		return syscall.EISDIR
	case dir && len(k.kids) > 0:
		return syscall.ENOTEMPTY
	}
	delete(n.in.kids, name)
	now := time.Now()
	n.in.mtime, n.in.ctime, k.ctime = now, now, now
	n.f.nsDirty[n.in] = struct{}{}
	return 0
}

// Unlink removes a file name.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := n.lock(); errno != 0 {
		return errno
	}
	defer n.unlock()
	return n.removeLocked(name, false)
}

// Rmdir removes an empty directory.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if errno := n.lock(); errno != 0 {
		return errno
	}
	defer n.unlock()
	return n.removeLocked(name, true)
}

// Rename moves name to newName in newParent, replacing what is there as
// rename(2) does; RENAME_NOREPLACE and RENAME_EXCHANGE are supported.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	if errno := n.lock(); errno != 0 {
		return errno
	}
	defer n.unlock()
	const (
		noReplace = 1 // RENAME_NOREPLACE
		exchange  = 2 // RENAME_EXCHANGE
	)
	if flags&^(noReplace|exchange) != 0 || flags == noReplace|exchange {
		return syscall.EINVAL
	}
	src, dst := n.in, np.in
	k := src.kids[name]
	if k == nil {
		return syscall.ENOENT
	}
	old := dst.kids[newName]
	switch {
	case old == k:
		return 0
	case flags&exchange != 0:
		if old == nil {
			return syscall.ENOENT
		}
		src.kids[name] = old
	case old != nil && flags&noReplace != 0:
		return syscall.EEXIST
	case old != nil && k.isDir() && !old.isDir():
		return syscall.ENOTDIR
	case old != nil && !k.isDir() && old.isDir():
		return syscall.EISDIR
	case old != nil && old.isDir() && len(old.kids) > 0:
		return syscall.ENOTEMPTY
	default:
		delete(src.kids, name)
	}
	dst.kids[newName] = k
	now := time.Now()
	src.mtime, src.ctime, dst.mtime, dst.ctime, k.ctime = now, now, now, now, now
	n.f.nsDirty[src] = struct{}{}
	n.f.nsDirty[dst] = struct{}{}
	return 0
}

// Open opens a file; O_TRUNC empties the current view.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if errno := n.lock(); errno != 0 {
		return nil, 0, errno
	}
	defer n.unlock()
	if flags&syscall.O_TRUNC != 0 && flags&syscall.O_ACCMODE != syscall.O_RDONLY && !n.in.isDir() {
		n.in.data.truncate(0)
		n.in.mtime = time.Now()
	}
	return nil, 0, 0
}

// Read reads the current view.
func (n *node) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if errno := n.lock(); errno != 0 {
		return nil, errno
	}
	defer n.unlock()
	if n.in.isDir() {
		return nil, syscall.EISDIR
	}
	k := n.in.data.readAt(dest, off)
	return fuse.ReadResultData(dest[:k]), 0
}

// Write writes into the current view only.
func (n *node) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if errno := n.lock(); errno != 0 {
		return 0, errno
	}
	defer n.unlock()
	if n.in.isDir() {
		return 0, syscall.EISDIR
	}
	n.in.data.writeAt(data, off)
	n.in.mtime = time.Now()
	n.f.stats.Writes++
	return uint32(len(data)), 0
}

// Fsync makes a file's data and size durable, or a directory's entries
// (FSYNCDIR arrives here too), then applies the rule and an armed cut.
func (n *node) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	name, _ := n.Parent()
	if errno := n.lock(); errno != 0 {
		return errno
	}
	defer n.unlock()
	n.f.syncedLocked(n.in, name)
	return 0
}

// Flush is close(2); it fails only after a cut.
func (n *node) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno {
	if errno := n.lock(); errno != 0 {
		return errno
	}
	n.unlock()
	return 0
}

// Release ends an open; there is nothing to release.
func (n *node) Release(ctx context.Context, fh fs.FileHandle) syscall.Errno { return 0 }

// Statfs reports a large, empty file system.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	if errno := n.lock(); errno != 0 {
		return errno
	}
	n.unlock()
	const blocks = 1 << 30 // 4 TiB of 4 KiB blocks
	out.Blocks, out.Bfree, out.Bavail = blocks, blocks, blocks
	out.Files, out.Ffree = 1<<30, 1<<30
	out.Bsize, out.Frsize = pageSize, pageSize
	out.NameLen = 255
	return 0
}

// Allocate supports fallocate's default mode (grow the size), KEEP_SIZE
// (nothing to reserve) and PUNCH_HOLE; other modes are not supported.
func (n *node) Allocate(ctx context.Context, fh fs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	const (
		keepSize  = 0x01 // FALLOC_FL_KEEP_SIZE
		punchHole = 0x02 // FALLOC_FL_PUNCH_HOLE
	)
	if errno := n.lock(); errno != 0 {
		return errno
	}
	defer n.unlock()
	if n.in.isDir() {
		return syscall.EISDIR
	}
	d := n.in.data
	end := int64(off + size)
	switch mode {
	case 0:
		if end > d.cur.size {
			d.truncate(end)
		}
	case keepSize:
	case punchHole | keepSize:
		d.zero(int64(off), min(end, d.cur.size))
	default:
		return syscall.EOPNOTSUPP
	}
	n.in.ctime = time.Now()
	return 0
}
