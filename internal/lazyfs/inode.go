package lazyfs

import (
	"maps"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// inode is one file or directory of the model. Its attributes other than
// the size (mode, owner, times) have a single view: they survive a cut as
// they are.
type inode struct {
	ino      uint64
	mode     uint32 // file type and permission bits
	uid, gid uint32
	atime    time.Time
	mtime    time.Time
	ctime    time.Time

	data *fileData // regular files

	kids    map[string]*inode // directories: current entries
	durKids map[string]*inode // directories: durable entries
}

func (in *inode) isDir() bool { return in.mode&syscall.S_IFMT == syscall.S_IFDIR }

func newInode(ino uint64, mode, uid, gid uint32, now time.Time) *inode {
	in := &inode{ino: ino, mode: mode, uid: uid, gid: gid, atime: now, mtime: now, ctime: now}
	if in.isDir() {
		in.kids = map[string]*inode{}
		in.durKids = map[string]*inode{}
	} else {
		in.data = newFileData()
	}
	return in
}

// fill writes the current attributes into out.
func (in *inode) fill(out *fuse.Attr) {
	out.Ino = in.ino
	out.Mode = in.mode
	out.Owner = fuse.Owner{Uid: in.uid, Gid: in.gid}
	out.Blksize = pageSize
	if in.isDir() {
		out.Nlink = 2 // itself and "."; plus each subdirectory's ".."
		for _, k := range in.kids {
			if k.isDir() {
				out.Nlink++
			}
		}
		out.Size = pageSize
		out.Blocks = pageSize / 512
	} else {
		out.Nlink = 1
		out.Size = uint64(in.data.cur.size)
		out.Blocks = uint64(len(in.data.cur.pages)) * (pageSize / 512)
	}
	out.SetTimes(&in.atime, &in.mtime, &in.ctime)
}

// syncEntries makes the directory's current entries durable.
func (in *inode) syncEntries() {
	in.durKids = maps.Clone(in.kids)
}
