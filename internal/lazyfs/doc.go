// Package lazyfs is a power-loss test kit: an in-memory FUSE file system
// that keeps every write in memory until its file is fsync'd, and every
// create, rename and unlink until its directory is fsync'd, so that a test
// can cut the power and see what a real crash would have left.
//
// # The model
//
// Every inode has two views. The current view is what reads see now. The
// durable view is what survives a cut. Writes, truncates and fallocate
// change only the current view of a file; an fsync of the file (fsync,
// fdatasync, or msync(MS_SYNC) of a shared mapping, which the kernel turns
// into an FSYNC after writing the dirty pages back) copies its current data
// and size into its durable view. Namespace operations (create, mkdir,
// unlink, rmdir, rename) change only the current entries of a directory;
// which fsync makes them durable depends on the [Rule]:
//
//   - [RulePOSIX]: a directory's entries become durable when that
//     directory is fsync'd. A file that was fsync'd but whose directory
//     was not vanishes at a cut.
//   - [RuleExt4]: any fsync, of a file or a directory, makes every pending
//     namespace operation of the file system durable, as ext4's journal
//     does; other files' data still needs their own fsync.
//
// At a cut ([FS.Cut], or [FS.CutAfterSync] right after a chosen fsync)
// the durable views freeze and every later request fails with EIO (or, with
// [ContinueAfterCut], succeeds without making anything durable).
// [FS.Restart] unmounts, replaces every current view by its durable view and
// mounts again at the same directory: a file whose name was never durable is
// gone, an unlinked file whose directory was not synced is back, a renamed
// file has its old name, and a file whose name is durable but whose data
// never was is empty. Storage is sparse, in 4 KiB pages shared between the
// views until written, so an fsync copies only the pages dirtied since the
// previous one.
//
// Only regular files and directories exist: no symlinks, hard links or
// xattrs. Attributes other than the size (mode, owner, times) have a single
// view.
//
// # Where it runs
//
// By default the file system is served by a child process: the running
// executable (the test binary) started again with LAZYFS_SERVE in its
// environment, which this package's init turns into a FUSE server before any
// main or TestMain runs; the FS is its handle, over a pair of pipes, and
// Unmount ends it, as does the end of the parent (the child then unmounts). The test process, its
// children and other programs (nats-server) use the mount point as an
// ordinary directory, and may map its files: writable MAP_SHARED mappings
// work (no direct I/O), and flock is emulated by the kernel.
//
// [InProcess] serves from the calling process instead: quicker to start, and
// the state is in the test's own memory, but that process must never touch a
// memory mapping of a file on the mount. A page fault there waits for the
// server while Go's garbage collector waits for the faulting thread, and the
// process hangs. Badger maps its files: with InProcess, a Badger under test
// runs in a child process.
//
// # Use from a test
//
// [Mount] skips the test when FUSE is unusable, or fails it when the
// environment has COURIER_REQUIRE_FUSE=1, and unmounts at the end. A store
// under test may run in the test process; it must be closed (or its process
// killed) before Restart, which takes the old mount away:
//
//	func TestSurvivesPowerCut(t *testing.T) {
//		f := lazyfs.Mount(t, "", lazyfs.RulePOSIX, lazyfs.ContinueAfterCut())
//		db := openStore(t, f.Dir())
//		publish(t, db, "acked") // returns after its fsyncs
//		f.Cut()                 // the power goes: nothing more becomes durable
//		db.Close()              // succeeds, but what it writes is lost
//		if err := f.Restart(); err != nil {
//			t.Fatal(err)
//		}
//		mustRead(t, openStore(t, f.Dir()), "acked")
//	}
//
// By default every request after the cut fails with EIO: right for a
// program in a child process that the test kills at the cut, or one that
// stops on I/O errors. Badger does not stop (its Close retries a failed
// flush for ever), hence ContinueAfterCut above. [FS.CutAfterSync] cuts at
// an exact point: right after the fsync of a chosen file, such as Badger's
// MANIFEST or a value log.
//
// # Limits
//
// After a cut, reads that the kernel answers from its page cache still
// succeed. sync(2) and syncfs(2) make nothing durable: go-fuse does not pass
// SYNCFS on, so only fsync, fdatasync, msync(MS_SYNC) and O_SYNC or O_DSYNC
// writes count. A rename between two directories of which only the target was
// fsync'd leaves, after Restart, the file under both names (one inode).
// Storage is limited by the memory of the serving process.
package lazyfs
