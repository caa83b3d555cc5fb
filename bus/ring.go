package bus

import "time"

// ring is a topic's in-memory history: the newest entries, bounded by count
// and age, with consecutive sequence numbers. The topic's pubMu guards it.
type ring struct {
	size   int // the most entries held; buf grows up to it
	buf    []*entry
	head   int    // index of the oldest entry
	n      int    // entries held
	first  uint64 // seq of the oldest entry; the next seq when empty
	maxAge int64  // nanoseconds; 0: no limit
}

func (r *ring) init(size int, maxAge time.Duration, next uint64) {
	r.size = size
	r.maxAge = int64(maxAge)
	r.first = next
}

func (r *ring) push(e *entry) {
	if r.n == len(r.buf) && len(r.buf) < r.size {
		// Grow by doubling, so a topic costs memory for what it holds,
		// not for what it may hold.
		buf := make([]*entry, min(max(2*len(r.buf), 8), r.size))
		for i := range r.n {
			buf[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = buf, 0
	}
	if r.n == len(r.buf) {
		r.buf[r.head] = nil
		r.head = (r.head + 1) % len(r.buf)
		r.n--
		r.first++
	}
	if r.n == 0 {
		r.first = e.seq
	}
	r.buf[(r.head+r.n)%len(r.buf)] = e
	r.n++
	r.expire(e.at)
}

// reset empties the ring, which continues at seq next.
func (r *ring) reset(next uint64) {
	clear(r.buf)
	r.head, r.n, r.first = 0, 0, next
}

// expire drops entries older than maxAge.
func (r *ring) expire(now int64) {
	if r.maxAge <= 0 {
		return
	}
	for r.n > 0 && now-r.buf[r.head].at > r.maxAge {
		r.buf[r.head] = nil
		r.head = (r.head + 1) % len(r.buf)
		r.n--
		r.first++
	}
}

// read appends up to limit entries from seq from on. ok is false when from
// is older than the oldest entry held.
func (r *ring) read(now int64, from uint64, limit int, out []*entry) (_ []*entry, ok bool) {
	r.expire(now)
	if from < r.first {
		return out, false
	}
	for i := int(from - r.first); i < r.n && limit > 0; i++ {
		out = append(out, r.buf[(r.head+i)%len(r.buf)])
		limit--
	}
	return out, true
}

// bounds returns the first seq held and the number of entries.
func (r *ring) bounds() (first uint64, n int) {
	return r.first, r.n
}

// seqAt returns the seq of the first entry at or after t, or the next seq
// when none is.
func (r *ring) seqAt(at int64) uint64 {
	lo, hi := 0, r.n
	for lo < hi {
		mid := (lo + hi) / 2
		if r.buf[(r.head+mid)%len(r.buf)].at < at {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return r.first + uint64(lo)
}
