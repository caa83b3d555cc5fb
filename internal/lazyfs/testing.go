package lazyfs

import (
	"fmt"
	"os"
	"testing"
)

// RequireEnv names the environment variable that turns Mount's skip into a
// failure: with COURIER_REQUIRE_FUSE=1 a test that cannot mount fails.
const RequireEnv = "COURIER_REQUIRE_FUSE"

// Available reports why FUSE cannot be used here, or nil. It opens
// /dev/fuse; only mounting tells for sure (see [Mount]).
func Available() error {
	if err := platform(); err != nil {
		return err
	}
	fd, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("lazyfs: FUSE unusable: %w", err)
	}
	return fd.Close()
}

// Mount mounts a fresh file system at dir (t.TempDir() if dir is "") for
// the test and unmounts it at t.Cleanup. When FUSE is unusable (no
// /dev/fuse, not allowed to mount) it skips the test with the reason, or
// fails it when the environment has COURIER_REQUIRE_FUSE=1.
func Mount(t testing.TB, dir string, rule Rule, opts ...Option) *FS {
	t.Helper()
	unusable := func(err error) {
		t.Helper()
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%v (%s=1)", err, RequireEnv)
		}
		t.Skipf("%v (set %s=1 to fail instead)", err, RequireEnv)
	}
	if err := Available(); err != nil {
		unusable(err)
	}
	if dir == "" {
		dir = t.TempDir()
	}
	f, err := New(dir, rule, opts...)
	if err != nil {
		unusable(err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Errorf("lazyfs: %v", err)
		}
	})
	return f
}
