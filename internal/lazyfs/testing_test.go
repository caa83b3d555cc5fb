//go:build linux

package lazyfs

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// recorder stands in for a test: it records Skipf and Fatalf, which end
// the goroutine as the real ones do.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Cleanup(func()) {}

// mountWith runs Mount on a directory that does not exist, as a test
// would, and returns what it recorded.
func mountWith(t *testing.T) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Mount(r, filepath.Join(t.TempDir(), "missing"), RulePOSIX)
	}()
	<-done
	return r
}

func TestMountSkipsOrFails(t *testing.T) {
	t.Run("skip", func(t *testing.T) {
		t.Setenv(RequireEnv, "")
		r := mountWith(t)
		if r.failed != "" || !strings.Contains(r.skipped, "set "+RequireEnv+"=1 to fail instead") {
			t.Fatalf("got skipped %q, failed %q; want a skip that names %s", r.skipped, r.failed, RequireEnv)
		}
		t.Log(r.skipped)
	})
	t.Run("require", func(t *testing.T) {
		t.Setenv(RequireEnv, "1")
		r := mountWith(t)
		if r.skipped != "" || !strings.Contains(r.failed, RequireEnv+"=1") {
			t.Fatalf("got skipped %q, failed %q; want a failure that names %s", r.skipped, r.failed, RequireEnv)
		}
	})
}
