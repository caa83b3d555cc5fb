package lazyfs

// pageSize is the granularity of storage and of copy-on-write between the
// current and the durable view of a file.
const pageSize = 4096

type page [pageSize]byte

// content is one view of a regular file: a sparse set of pages and a size.
// Bytes at or past size are always zero in every page.
type content struct {
	pages map[int64]*page
	size  int64
}

// fileData holds both views of a regular file. Pages not in dirty are shared
// between cur and dur (or absent from both) and are never written in place;
// pages in dirty belong to cur alone (or were removed from cur).
type fileData struct {
	cur, dur content
	dirty    map[int64]struct{}
}

func newFileData() *fileData {
	return &fileData{
		cur:   content{pages: map[int64]*page{}},
		dur:   content{pages: map[int64]*page{}},
		dirty: map[int64]struct{}{},
	}
}

// writable returns page idx of the current view, private to it.
func (d *fileData) writable(idx int64) *page {
	p := d.cur.pages[idx]
	if _, ok := d.dirty[idx]; ok {
		if p == nil {
			p = new(page)
			d.cur.pages[idx] = p
		}
		return p
	}
	np := new(page)
	if p != nil {
		*np = *p
	}
	d.cur.pages[idx] = np
	d.dirty[idx] = struct{}{}
	return np
}

// readAt copies the current view at off into dest and reports how many bytes
// it copied (short at the end of the file).
func (d *fileData) readAt(dest []byte, off int64) int {
	if off >= d.cur.size {
		return 0
	}
	if rest := d.cur.size - off; int64(len(dest)) > rest {
		dest = dest[:rest]
	}
	n := 0
	for n < len(dest) {
		pos := off + int64(n)
		idx, in := pos/pageSize, int(pos%pageSize)
		chunk := dest[n:]
		if len(chunk) > pageSize-in {
			chunk = chunk[:pageSize-in]
		}
		if p := d.cur.pages[idx]; p != nil {
			copy(chunk, p[in:])
		} else {
			clear(chunk)
		}
		n += len(chunk)
	}
	return n
}

// writeAt writes src into the current view at off, growing the file.
func (d *fileData) writeAt(src []byte, off int64) {
	for n := 0; n < len(src); {
		pos := off + int64(n)
		idx, in := pos/pageSize, int(pos%pageSize)
		n += copy(d.writable(idx)[in:], src[n:])
	}
	if end := off + int64(len(src)); end > d.cur.size {
		d.cur.size = end
	}
}

// truncate sets the current size; pages past it are dropped and the tail of
// the last page is zeroed, so that a later growth reads zeros.
func (d *fileData) truncate(size int64) {
	if size >= d.cur.size {
		d.cur.size = size
		return
	}
	d.zero(size, d.cur.size)
	d.cur.size = size
}

// zero makes [from, to) of the current view read as zeros, dropping the
// pages it covers whole.
func (d *fileData) zero(from, to int64) {
	if from >= to {
		return
	}
	first, last := from/pageSize, (to-1)/pageSize
	if last-first+1 > int64(len(d.cur.pages)) {
		// Few pages, long range: walk the pages rather than the range.
		for idx := range d.cur.pages {
			if idx >= first && idx <= last {
				d.zeroPage(idx, from, to)
			}
		}
		return
	}
	for idx := first; idx <= last; idx++ {
		if d.cur.pages[idx] != nil {
			d.zeroPage(idx, from, to)
		}
	}
}

func (d *fileData) zeroPage(idx, from, to int64) {
	start, end := idx*pageSize, (idx+1)*pageSize
	if from <= start && to >= end {
		delete(d.cur.pages, idx)
		d.dirty[idx] = struct{}{}
		return
	}
	p := d.writable(idx)
	clear(p[max(from, start)-start : min(to, end)-start])
}

// sync makes the current view durable. It costs one map write per page
// dirtied since the last sync.
func (d *fileData) sync() (pages int) {
	for idx := range d.dirty {
		if p := d.cur.pages[idx]; p != nil {
			d.dur.pages[idx] = p
		} else {
			delete(d.dur.pages, idx)
		}
	}
	pages = len(d.dirty)
	clear(d.dirty)
	d.dur.size = d.cur.size
	return pages
}

// rollback replaces the current view by the durable one and reports how many
// pages it dropped.
func (d *fileData) rollback() (pages int) {
	for idx := range d.dirty {
		if p := d.dur.pages[idx]; p != nil {
			d.cur.pages[idx] = p
		} else {
			delete(d.cur.pages, idx)
		}
	}
	pages = len(d.dirty)
	clear(d.dirty)
	d.cur.size = d.dur.size
	return pages
}
