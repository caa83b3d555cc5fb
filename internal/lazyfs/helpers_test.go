//go:build linux

package lazyfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// put creates (or truncates) name under dir with data, fsyncing the file
// when sync is set.
func put(t *testing.T, dir, name string, data []byte, sync bool) {
	t.Helper()
	fd, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if _, err := fd.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := fd.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

// syncDir fsyncs a directory.
func syncDir(t *testing.T, dir string) {
	t.Helper()
	fd, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if err := fd.Sync(); err != nil {
		t.Fatal(err)
	}
}

// restart cuts, restarts and fails the test on error.
func restart(t *testing.T, f *FS) {
	t.Helper()
	f.Cut()
	if err := f.Restart(); err != nil {
		t.Fatal(err)
	}
}

// want checks that name holds data, or is missing when data is nil.
func want(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, name))
	if data == nil {
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: got %d bytes, err %v; want it missing", name, len(got), err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("%s: got %q, want %q", name, trim(got), trim(data))
	}
}

func trim(b []byte) []byte {
	if len(b) > 64 {
		return append(b[:64:64], "..."...)
	}
	return b
}

// wantEIO checks that err is EIO.
func wantEIO(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("%s: got %v, want EIO", what, err)
	}
}

// eachServer runs test once with the server in a child process (the default)
// and once in the test process.
func eachServer(t *testing.T, test func(t *testing.T, opts ...Option)) {
	t.Run("child", func(t *testing.T) { test(t) })
	t.Run("inprocess", func(t *testing.T) { test(t, InProcess()) })
}
