//go:build linux

package lazyfs

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// MAP_SHARED pages count once msync'd. With the server in a child process
// (the default) the test process itself maps files of the mount, as an
// in-process Badger does; with InProcess a child process maps them.
func TestMmapSharedNeedsMsync(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  []Option
		child bool // map in a child process
	}{
		{"test process maps", nil, false},
		{"child maps", []Option{InProcess()}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := Mount(t, "", RulePOSIX, tc.opts...)
			d := f.Dir()
			const size = 1 << 20
			offs := []int{0, 100 * pageSize, size - 5}
			wantContent := make([]byte, size)
			for name, sync := range map[string]string{"synced": "true", "dropped": "false"} {
				args := []string{filepath.Join(d, name), strconv.Itoa(size), sync}
				for _, off := range offs {
					args = append(args, strconv.Itoa(off))
					copy(wantContent[off:], "hello")
				}
				if tc.child {
					runChildOp(t, "mmap", args...)
				} else if err := mapAndWrite(args); err != nil {
					t.Fatal(err)
				}
			}
			syncDir(t, d)
			want(t, d, "synced", wantContent)
			want(t, d, "dropped", wantContent)
			runtime.GC() // the collector must not wait on a fault in the mount
			restart(t, f)
			want(t, d, "synced", wantContent)
			want(t, d, "dropped", make([]byte, size))
		})
	}
}

func TestTruncateSparseAndUndone(t *testing.T) {
	f := Mount(t, "", RulePOSIX)
	d := f.Dir()
	p := filepath.Join(d, "big")
	const big = 1 << 40 // 1 TiB: only cheap if sparse
	fd, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := fd.Truncate(big); err != nil {
		t.Fatal(err)
	}
	if _, err := fd.WriteAt([]byte("tail"), big-4); err != nil {
		t.Fatal(err)
	}
	if err := fd.Sync(); err != nil {
		t.Fatal(err)
	}
	syncDir(t, d)
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != big || st.Blocks > pageSize/512 {
		t.Fatalf("after truncate: got size %d, %d blocks; want %d, at most %d", st.Size, st.Blocks, int64(big), pageSize/512)
	}
	if err := fd.Truncate(10); err != nil {
		t.Fatal(err)
	}
	fd.Close()
	restart(t, f)
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != big {
		t.Fatalf("size after an unsynced truncate and a cut: got %d, want %d", st.Size, int64(big))
	}
	fd, err = os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	buf := make([]byte, 8)
	if _, err := fd.ReadAt(buf, big-8); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, []byte("\x00\x00\x00\x00tail")) {
		t.Fatalf("tail: got %q, want %q", buf, "\x00\x00\x00\x00tail")
	}
}

func TestTruncateThenGrowReadsZeros(t *testing.T) {
	f := Mount(t, "", RulePOSIX)
	d := f.Dir()
	p := filepath.Join(d, "f")
	put(t, d, "f", bytes.Repeat([]byte("x"), 3*pageSize), true)
	if err := os.Truncate(p, pageSize+10); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 3*pageSize); err != nil {
		t.Fatal(err)
	}
	wantContent := make([]byte, 3*pageSize)
	copy(wantContent, bytes.Repeat([]byte("x"), pageSize+10))
	want(t, d, "f", wantContent)
}

func TestFallocate(t *testing.T) {
	f := Mount(t, "", RulePOSIX)
	d := f.Dir()
	fd, err := os.Create(filepath.Join(d, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if err := unix.Fallocate(int(fd.Fd()), 0, 0, 3*pageSize); err != nil {
		t.Fatal(err)
	}
	if _, err := fd.Write(bytes.Repeat([]byte("y"), 3*pageSize)); err != nil {
		t.Fatal(err)
	}
	const punch = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE
	if err := unix.Fallocate(int(fd.Fd()), punch, pageSize/2, 2*pageSize); err != nil {
		t.Fatal(err)
	}
	wantContent := bytes.Repeat([]byte("y"), 3*pageSize)
	clear(wantContent[pageSize/2 : pageSize/2+2*pageSize])
	want(t, d, "f", wantContent)
	if err := unix.Fallocate(int(fd.Fd()), unix.FALLOC_FL_COLLAPSE_RANGE, 0, pageSize); err != unix.EOPNOTSUPP {
		t.Fatalf("collapse range: got %v, want EOPNOTSUPP", err)
	}
}
