//go:build linux

package lazyfs

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestCutAfterSync(t *testing.T) {
	eachServer(t, func(t *testing.T, opts ...Option) {
		f := Mount(t, "", RulePOSIX, opts...)
		d := f.Dir()
		put(t, d, "a", []byte("a1"), true)
		put(t, d, "b.log", []byte("b1"), true)
		syncDir(t, d)
		f.CutAfterSync("*.log")
		put(t, d, "a", []byte("a2"), true) // does not match: no cut
		if f.IsCut() {
			t.Fatal("cut after the fsync of a file that does not match")
		}
		fd, err := os.OpenFile(filepath.Join(d, "b.log"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fd.Close()
		if _, err := fd.WriteString("+b2"); err != nil {
			t.Fatal(err)
		}
		if err := fd.Sync(); err != nil {
			t.Fatalf("the fsync that cuts: got %v, want success", err)
		}
		if !f.IsCut() {
			t.Fatal("no cut after the fsync of b.log")
		}
		_, err = fd.WriteString("+b3")
		wantEIO(t, "write after the cut", err)
		wantEIO(t, "fsync after the cut", fd.Sync())
		_, err = os.Create(filepath.Join(d, "c"))
		wantEIO(t, "create after the cut", err)
		if err := f.Restart(); err != nil {
			t.Fatal(err)
		}
		want(t, d, "a", []byte("a2"))
		want(t, d, "b.log", []byte("b1+b2"))
		want(t, d, "c", nil)
		if s := f.Stats(); s.Cuts != 1 || s.Refused == 0 {
			t.Fatalf("stats: got %+v, want 1 cut and some refused requests", s)
		}
	})
}

func TestCutAfterDirSync(t *testing.T) {
	f := Mount(t, "", RulePOSIX)
	d := f.Dir()
	if err := os.Mkdir(filepath.Join(d, "wal"), 0o755); err != nil {
		t.Fatal(err)
	}
	syncDir(t, d)
	put(t, d, "wal/1", []byte("one"), true)
	f.CutAfterSync("wal")
	syncDir(t, filepath.Join(d, "wal"))
	_, err := os.Create(filepath.Join(d, "wal/2"))
	wantEIO(t, "create after the cut", err)
	if err := f.Restart(); err != nil {
		t.Fatal(err)
	}
	want(t, d, "wal/1", []byte("one"))
	want(t, d, "wal/2", nil)
}

func TestRestartRepeatedly(t *testing.T) {
	eachServer(t, func(t *testing.T, opts ...Option) {
		f := Mount(t, "", RulePOSIX, opts...)
		d := f.Dir()
		for i := range 5 {
			name := "f" + strconv.Itoa(i)
			put(t, d, name, []byte(name), true)
			put(t, d, "lost", []byte(name), true) // its name is never durable
			if err := os.Remove(filepath.Join(d, "lost")); err != nil {
				t.Fatal(err)
			}
			syncDir(t, d)
			put(t, d, "lost", []byte(name), true)
			restart(t, f)
			for j := range i + 1 {
				n := "f" + strconv.Itoa(j)
				want(t, d, n, []byte(n))
			}
			want(t, d, "lost", nil)
		}
		if s := f.Stats(); s.Restarts != 5 || s.Cuts != 5 {
			t.Fatalf("stats: got %+v, want 5 restarts and 5 cuts", s)
		}
	})
}

func TestRestartWhileBusy(t *testing.T) {
	eachServer(t, func(t *testing.T, opts ...Option) {
		f := Mount(t, "", RulePOSIX, opts...)
		d := f.Dir()
		put(t, d, "f", []byte("v1"), true)
		syncDir(t, d)
		// An open descriptor and a working directory inside keep the mount busy.
		fd, err := os.OpenFile(filepath.Join(d, "f"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fd.Close()
		if _, err := fd.WriteAt([]byte("v2"), 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Restart(); err != nil { // cuts by itself
			t.Fatal(err)
		}
		_, err = fd.WriteAt([]byte("v3"), 0)
		if err == nil {
			t.Fatal("write through a descriptor of the old mount succeeded")
		}
		want(t, d, "f", []byte("v1"))
		put(t, d, "f", []byte("v4"), true)
		want(t, d, "f", []byte("v4"))
	})
}

func TestUnmountTwice(t *testing.T) {
	f := Mount(t, "", RulePOSIX)
	if err := f.Unmount(); err != nil {
		t.Fatal(err)
	}
	if err := f.Unmount(); err != nil {
		t.Fatalf("second Unmount: got %v, want nil", err)
	}
	if err := f.Restart(); err != ErrUnmounted {
		t.Fatalf("Restart after Unmount: got %v, want ErrUnmounted", err)
	}
}

// A server process that dies leaves a dead mount; Unmount reports the death
// and takes the mount away, so that the directory can be removed.
func TestServerProcessKilled(t *testing.T) {
	f := Mount(t, "", RulePOSIX)
	put(t, f.Dir(), "f", []byte("x"), true)
	if err := f.b.(*child).cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := f.Unmount(); err == nil {
		t.Fatal("Unmount after the server was killed: got nil, want an error")
	}
	if ents, err := os.ReadDir(f.Dir()); err != nil || len(ents) != 0 {
		t.Fatalf("the mount point after Unmount: got %d entries, %v; want an empty directory", len(ents), err)
	}
	if err := f.Restart(); err != ErrUnmounted {
		t.Fatalf("Restart: got %v, want ErrUnmounted", err)
	}
}
