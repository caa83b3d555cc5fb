//go:build linux

package lazyfs

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkAppendFsync appends 64 bytes and fsyncs, as a log with one
// record a commit does.
func BenchmarkAppendFsync(b *testing.B) {
	for _, s := range []struct {
		name string
		opts []Option
	}{{"child", nil}, {"inprocess", []Option{InProcess()}}} {
		b.Run(s.name, func(b *testing.B) {
			f := Mount(b, "", RulePOSIX, s.opts...)
			fd, err := os.Create(filepath.Join(f.Dir(), "log"))
			if err != nil {
				b.Fatal(err)
			}
			defer fd.Close()
			rec := make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := fd.Write(rec); err != nil {
					b.Fatal(err)
				}
				if err := fd.Sync(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
