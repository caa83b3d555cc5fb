//go:build linux

package lazyfs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestUnsyncedWriteLost(t *testing.T) {
	eachServer(t, func(t *testing.T, opts ...Option) {
		f := Mount(t, "", RulePOSIX, opts...)
		d := f.Dir()
		put(t, d, "synced", []byte("kept"), true)
		put(t, d, "unsynced", []byte("lost"), false)
		syncDir(t, d)
		restart(t, f)
		want(t, d, "synced", []byte("kept"))
		// The name was made durable by the directory fsync, the data never was.
		want(t, d, "unsynced", []byte{})
		if got := f.Stats().DroppedPages; got != 1 {
			t.Fatalf("DroppedPages: got %d, want 1", got)
		}
	})
}

func TestSyncedPrefixKept(t *testing.T) {
	f := Mount(t, "", RulePOSIX)
	d := f.Dir()
	fd, err := os.Create(filepath.Join(d, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	syncDir(t, d)
	var all []byte
	for i := range 10 {
		rec := []byte{byte('a' + i), '\n'}
		if _, err := fd.Write(rec); err != nil {
			t.Fatal(err)
		}
		all = append(all, rec...)
		if i == 5 {
			if err := fd.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	want(t, d, "log", all)
	restart(t, f)
	want(t, d, "log", all[:12])
}
