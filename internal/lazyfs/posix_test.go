//go:build linux

package lazyfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// flock is what Badger and nats-server use to guard a directory; the kernel
// emulates it when the server does not implement locks.
func TestFlock(t *testing.T) {
	f := Mount(t, "", RulePOSIX)
	p := filepath.Join(f.Dir(), "LOCK")
	a, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := unix.Flock(int(a.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("first flock: %v", err)
	}
	if err := unix.Flock(int(b.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("second flock: got %v, want EWOULDBLOCK", err)
	}
	if err := unix.Flock(int(a.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(b.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("flock after unlock: %v", err)
	}
}

func TestAppendAndStat(t *testing.T) {
	f := Mount(t, "", RulePOSIX)
	d := f.Dir()
	p := filepath.Join(d, "log")
	for _, s := range []string{"one ", "two ", "three"} {
		fd, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fd.WriteString(s); err != nil {
			t.Fatal(err)
		}
		if err := fd.Close(); err != nil {
			t.Fatal(err)
		}
	}
	want(t, d, "log", []byte("one two three"))
	fd, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if off, err := fd.Seek(0, io.SeekEnd); off != 13 || err != nil {
		t.Fatalf("SEEK_END: got %d, %v; want 13", off, err)
	}
	// No server support: the kernel treats the whole file as data.
	if off, err := unix.Seek(int(fd.Fd()), 4, unix.SEEK_DATA); off != 4 || err != nil {
		t.Fatalf("SEEK_DATA: got %d, %v; want 4", off, err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 13 || st.Mode().Perm() != 0o600 || !st.Mode().IsRegular() {
		t.Fatalf("stat: got size %d mode %v, want 13 and -rw-------", st.Size(), st.Mode())
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if st, err = os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("after chmod: got %v, %v; want -rw-r--r--", st.Mode(), err)
	}
	for _, sub := range []string{"x", "y"} {
		if err := os.Mkdir(filepath.Join(d, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var dst syscall.Stat_t
	if err := syscall.Stat(d, &dst); err != nil || dst.Nlink != 4 {
		t.Fatalf("links of a directory with two subdirectories: got %d, %v; want 4", dst.Nlink, err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(d, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Bavail == 0 || sfs.Bsize != pageSize {
		t.Fatalf("statfs: got %d blocks of %d available, want many of %d", sfs.Bavail, sfs.Bsize, pageSize)
	}
}

// Pages written through a mapping before a cut and written back (msync)
// after it never become durable.
func TestMsyncAfterCut(t *testing.T) {
	f := Mount(t, "", RulePOSIX) // the server is elsewhere: this process may map
	d := f.Dir()
	p := filepath.Join(d, "m")
	put(t, d, "m", bytes.Repeat([]byte("a"), 2*pageSize), true)
	syncDir(t, d)
	fd, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(fd.Fd()), 0, 2*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	copy(m, "bbbb")
	f.Cut()
	wantEIO(t, "msync after the cut", unix.Msync(m, unix.MS_SYNC))
	if err := unix.Munmap(m); err != nil {
		t.Fatal(err)
	}
	fd.Close()
	if err := f.Restart(); err != nil {
		t.Fatal(err)
	}
	want(t, d, "m", bytes.Repeat([]byte("a"), 2*pageSize))
}

// Many writers, syncers and listers at once: the server's state stays
// consistent (run with -race), and what each writer synced last survives.
func TestConcurrentWritersAndSyncs(t *testing.T) {
	for _, rule := range []Rule{RulePOSIX, RuleExt4} {
		t.Run(rule.String(), func(t *testing.T) {
			eachServer(t, func(t *testing.T, opts ...Option) {
				f := Mount(t, "", rule, opts...)
				d := f.Dir()
				const writers, rounds = 8, 20
				var wg sync.WaitGroup
				errs := make(chan error, writers+1)
				for w := range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						errs <- writeRounds(d, w, rounds)
					}()
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range rounds {
						if _, err := os.ReadDir(d); err != nil {
							errs <- err
							return
						}
					}
					errs <- nil
				}()
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
				restart(t, f)
				for w := range writers {
					want(t, d, fmt.Sprintf("w%d", w), fmt.Appendf(nil, "writer %d round %d", w, rounds-1))
					want(t, d, fmt.Sprintf("w%d.tmp", w), nil)
				}
			})
		})
	}
}

// writeRounds replaces file w<n> rounds times the safe way: write a
// temporary, fsync it, rename it over, fsync the directory.
func writeRounds(dir string, w, rounds int) error {
	name := filepath.Join(dir, fmt.Sprintf("w%d", w))
	for r := range rounds {
		tmp := name + ".tmp"
		fd, err := os.Create(tmp)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(fd, "writer %d round %d", w, r); err != nil {
			fd.Close()
			return err
		}
		if err := fd.Sync(); err != nil {
			fd.Close()
			return err
		}
		if err := fd.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp, name); err != nil {
			return err
		}
		dfd, err := os.Open(dir)
		if err != nil {
			return err
		}
		err = dfd.Sync()
		dfd.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func TestRenameFlags(t *testing.T) {
	f := Mount(t, "", RulePOSIX)
	d := f.Dir()
	put(t, d, "a", []byte("A"), false)
	put(t, d, "b", []byte("B"), false)
	a, b := filepath.Join(d, "a"), filepath.Join(d, "b")
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_NOREPLACE); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("RENAME_NOREPLACE over b: got %v, want EEXIST", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
		t.Fatalf("RENAME_EXCHANGE: %v", err)
	}
	want(t, d, "a", []byte("B"))
	want(t, d, "b", []byte("A"))
	if err := os.Mkdir(filepath.Join(d, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Rename(a, filepath.Join(d, "dir")); !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("rename of a file over a directory: got %v, want EISDIR", err)
	}
}

// nats-server's SyncAlways opens its block files with O_SYNC: every write
// is followed by an fsync from the kernel.
func TestOSyncWriteIsDurable(t *testing.T) {
	for name, flag := range map[string]int{"O_SYNC": os.O_SYNC, "O_DSYNC": syscall.O_DSYNC} {
		t.Run(name, func(t *testing.T) {
			f := Mount(t, "", RulePOSIX)
			d := f.Dir()
			put(t, d, "blk", nil, true)
			syncDir(t, d)
			fd, err := os.OpenFile(filepath.Join(d, "blk"), os.O_WRONLY|flag, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer fd.Close()
			before := f.Stats().Fsyncs
			if _, err := fd.WriteString("record"); err != nil {
				t.Fatal(err)
			}
			if got := f.Stats().Fsyncs; got != before+1 {
				t.Fatalf("fsyncs after one write: got %d, want %d", got, before+1)
			}
			restart(t, f)
			want(t, d, "blk", []byte("record"))
		})
	}
}
