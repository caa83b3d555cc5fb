//go:build linux

package lazyfs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCreateNeedsDirSync(t *testing.T) {
	for _, tc := range []struct {
		rule Rule
		want []byte // after a cut, for a file fsync'd in an unsynced directory
	}{
		{RulePOSIX, nil},
		{RuleExt4, []byte("data")},
	} {
		t.Run(tc.rule.String(), func(t *testing.T) {
			f := Mount(t, "", tc.rule)
			d := f.Dir()
			put(t, d, "nosync", []byte("x"), false)
			put(t, d, "f", []byte("data"), true)
			restart(t, f)
			want(t, d, "f", tc.want)
			if tc.rule == RuleExt4 {
				// Its name went with f's fsync; its data did not.
				want(t, d, "nosync", []byte{})
			} else {
				want(t, d, "nosync", nil)
			}
		})
	}
}

func TestCreateKeptWithDirSync(t *testing.T) {
	f := Mount(t, "", RulePOSIX)
	d := f.Dir()
	if err := os.Mkdir(filepath.Join(d, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	syncDir(t, d)
	put(t, d, "sub/f", []byte("data"), true)
	syncDir(t, filepath.Join(d, "sub"))
	restart(t, f)
	want(t, d, "sub/f", []byte("data"))
}

func TestMkdirNeedsParentSync(t *testing.T) {
	f := Mount(t, "", RulePOSIX)
	d := f.Dir()
	if err := os.Mkdir(filepath.Join(d, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	put(t, d, "sub/f", []byte("data"), true)
	syncDir(t, filepath.Join(d, "sub"))
	restart(t, f)
	if _, err := os.Stat(filepath.Join(d, "sub")); !os.IsNotExist(err) {
		t.Fatalf("sub after cut: got %v, want it missing", err)
	}
	if got := f.Stats().DroppedFiles; got != 2 {
		t.Fatalf("DroppedFiles: got %d, want 2", got)
	}
}

func TestUnlinkUndoneWithoutDirSync(t *testing.T) {
	for _, synced := range []bool{false, true} {
		t.Run(map[bool]string{false: "nosync", true: "dirsync"}[synced], func(t *testing.T) {
			f := Mount(t, "", RulePOSIX)
			d := f.Dir()
			put(t, d, "f", []byte("data"), true)
			syncDir(t, d)
			if err := os.Remove(filepath.Join(d, "f")); err != nil {
				t.Fatal(err)
			}
			want(t, d, "f", nil)
			if synced {
				syncDir(t, d)
			}
			restart(t, f)
			if synced {
				want(t, d, "f", nil)
			} else {
				want(t, d, "f", []byte("data"))
			}
		})
	}
}

func TestRenameUndoneWithoutDirSync(t *testing.T) {
	for _, synced := range []bool{false, true} {
		t.Run(map[bool]string{false: "nosync", true: "dirsync"}[synced], func(t *testing.T) {
			f := Mount(t, "", RulePOSIX)
			d := f.Dir()
			put(t, d, "a", []byte("old a"), true)
			put(t, d, "b", []byte("old b"), true)
			syncDir(t, d)
			// The classic atomic replace: write a temporary, fsync, rename.
			put(t, d, "a.tmp", []byte("new a"), true)
			if err := os.Rename(filepath.Join(d, "a.tmp"), filepath.Join(d, "a")); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(d, "b"), filepath.Join(d, "c")); err != nil {
				t.Fatal(err)
			}
			if synced {
				syncDir(t, d)
			}
			restart(t, f)
			restored := map[bool]uint64{false: 2, true: 0}[synced] // a and b
			if got := f.Stats().RestoredNames; got != restored {
				t.Fatalf("RestoredNames: got %d, want %d", got, restored)
			}
			if synced {
				want(t, d, "a", []byte("new a"))
				want(t, d, "a.tmp", nil)
				want(t, d, "b", nil)
				want(t, d, "c", []byte("old b"))
			} else {
				want(t, d, "a", []byte("old a"))
				want(t, d, "a.tmp", nil)
				want(t, d, "b", []byte("old b"))
				want(t, d, "c", nil)
			}
		})
	}
}

func TestRenameAcrossDirectories(t *testing.T) {
	f := Mount(t, "", RulePOSIX)
	d := f.Dir()
	for _, s := range []string{"x", "y"} {
		if err := os.Mkdir(filepath.Join(d, s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	syncDir(t, d)
	put(t, d, "x/f", []byte("data"), true)
	syncDir(t, filepath.Join(d, "x"))
	if err := os.Rename(filepath.Join(d, "x/f"), filepath.Join(d, "y/f")); err != nil {
		t.Fatal(err)
	}
	syncDir(t, filepath.Join(d, "x"))
	syncDir(t, filepath.Join(d, "y"))
	restart(t, f)
	want(t, d, "x/f", nil)
	want(t, d, "y/f", []byte("data"))
}

func TestExt4AnyFsyncCommitsNamespace(t *testing.T) {
	f := Mount(t, "", RuleExt4)
	d := f.Dir()
	put(t, d, "a", []byte("a"), true)
	put(t, d, "b", []byte("b"), false)
	if err := os.Rename(filepath.Join(d, "a"), filepath.Join(d, "c")); err != nil {
		t.Fatal(err)
	}
	put(t, d, "other", []byte("o"), true) // commits the rename and b's name
	restart(t, f)
	want(t, d, "a", nil)
	want(t, d, "c", []byte("a"))
	want(t, d, "b", []byte{})
	want(t, d, "other", []byte("o"))
}

func TestReaddirAndErrors(t *testing.T) {
	f := Mount(t, "", RulePOSIX)
	d := f.Dir()
	put(t, d, "b", nil, false)
	put(t, d, "a", nil, false)
	if err := os.Mkdir(filepath.Join(d, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	put(t, d, "dir/x", nil, false)
	ents, err := os.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := filepath.Join(names...); got != filepath.Join("a", "b", "dir") {
		t.Fatalf("readdir: got %v, want [a b dir]", names)
	}
	if err := os.Remove(filepath.Join(d, "dir")); err == nil {
		t.Fatal("rmdir of a non-empty directory succeeded")
	}
	if _, err := os.OpenFile(filepath.Join(d, "a"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !os.IsExist(err) {
		t.Fatalf("O_EXCL on an existing file: got %v, want EEXIST", err)
	}
}

func TestRmdirUndoneWithoutDirSync(t *testing.T) {
	f := Mount(t, "", RulePOSIX)
	d := f.Dir()
	sub := filepath.Join(d, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	put(t, d, "sub/f", []byte("data"), true)
	syncDir(t, sub)
	syncDir(t, d)
	if err := os.Remove(filepath.Join(sub, "f")); err != nil {
		t.Fatal(err)
	}
	syncDir(t, sub) // sub is empty for good
	if err := os.Remove(sub); err != nil {
		t.Fatal(err)
	}
	restart(t, f) // d was not synced: sub is back, empty
	ents, err := os.ReadDir(sub)
	if err != nil || len(ents) != 0 {
		t.Fatalf("sub after the cut: got %d entries, %v; want it back and empty", len(ents), err)
	}
}
