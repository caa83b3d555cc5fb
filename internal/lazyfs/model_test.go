//go:build linux

package lazyfs

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// flat is the obvious model of a file's two views: two byte slices.
type flat struct{ cur, dur []byte }

func (m *flat) writeAt(src []byte, off int64) {
	if end := off + int64(len(src)); end > int64(len(m.cur)) {
		m.cur = append(m.cur, make([]byte, end-int64(len(m.cur)))...)
	}
	copy(m.cur[off:], src)
}

func (m *flat) truncate(size int64) {
	if size <= int64(len(m.cur)) {
		m.cur = m.cur[:size:size]
		return
	}
	m.cur = append(m.cur, make([]byte, size-int64(len(m.cur)))...)
}

// TestFileDataAgainstModel runs random writes, truncates, hole punches,
// syncs and rollbacks on the paged, copy-on-write storage and on the flat
// model, and compares both views after every step.
func TestFileDataAgainstModel(t *testing.T) {
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 1))
		d, m := newFileData(), &flat{}
		for step := range 200 {
			const span = 12 * pageSize
			off := rng.Int64N(span)
			switch op := rng.IntN(10); {
			case op < 5:
				buf := make([]byte, rng.IntN(2*pageSize)+1)
				for i := range buf {
					buf[i] = byte(rng.IntN(255) + 1)
				}
				d.writeAt(buf, off)
				m.writeAt(buf, off)
			case op < 7:
				d.truncate(off)
				m.truncate(off)
			case op < 8:
				end := min(off+rng.Int64N(3*pageSize), int64(len(m.cur)))
				d.zero(off, end)
				if off < end {
					clear(m.cur[off:end])
				}
			case op < 9:
				d.sync()
				m.dur = bytes.Clone(m.cur)
			default:
				d.rollback()
				m.cur = bytes.Clone(m.dur)
			}
			if got := read(d, d.cur.size); !bytes.Equal(got, m.cur) || d.cur.size != int64(len(m.cur)) {
				t.Fatalf("seed %d step %d: current view differs from the model (size %d, want %d)", seed, step, d.cur.size, len(m.cur))
			}
			// The durable view, read through a copy so as not to disturb d.
			dv := &fileData{cur: d.dur}
			if got := read(dv, d.dur.size); !bytes.Equal(got, m.dur) {
				t.Fatalf("seed %d step %d: durable view differs from the model", seed, step)
			}
		}
	}
}

func read(d *fileData, size int64) []byte {
	buf := make([]byte, size)
	return buf[:d.readAt(buf, 0)]
}

// An fsync costs the pages written since the previous one, not the file.
func TestSyncCopiesOnlyDirtyPages(t *testing.T) {
	d := newFileData()
	d.truncate(1 << 30)
	for i := range int64(100) {
		d.writeAt([]byte("x"), i*pageSize)
	}
	if got := d.sync(); got != 100 {
		t.Fatalf("first sync: got %d pages, want 100", got)
	}
	d.writeAt([]byte("y"), 5*pageSize)
	d.writeAt([]byte("z"), 5*pageSize+1)
	if got := d.sync(); got != 1 {
		t.Fatalf("second sync: got %d pages, want 1", got)
	}
	if d.cur.pages[5] != d.dur.pages[5] {
		t.Fatal("after a sync the views do not share page 5")
	}
	d.writeAt([]byte("w"), 5*pageSize)
	if d.cur.pages[5] == d.dur.pages[5] || d.dur.pages[5][0] != 'y' {
		t.Fatal("a write after a sync changed the durable page")
	}
}
