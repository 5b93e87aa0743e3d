// Package ringlog is an append-only byte log addressed by absolute offsets
// that keeps only its newest bytes: shells and background commands use it
// so that output can be followed by cursor with bounded memory.
package ringlog

// Log is an append-only byte log addressed by absolute offsets (bytes since
// it began) that keeps at most max bytes: [start, end) is what is
// still held. Its storage grows on demand up to max, so an idle shell costs
// little. The byte at offset o lives at index o % len(buf). Not safe for
// concurrent use; the shell's mutex guards it.
type Log struct {
	buf   []byte
	max   int
	start int64
	end   int64
}

// minRingAlloc is the first allocation of a log's storage.
const minRingAlloc = 64 << 10

// New returns an empty log that keeps at most max bytes.
func New(max int) *Log {
	if max < 1 {
		max = 1
	}
	return &Log{max: max}
}

// Write appends p, dropping the oldest bytes when the log is full.
func (r *Log) Write(p []byte) {
	if len(p) == 0 {
		return
	}
	if need := min(int64(r.max), r.end-r.start+int64(len(p))); need > int64(len(r.buf)) {
		r.grow(int(need))
	}
	if len(p) > len(r.buf) {
		// Only the newest len(buf) bytes can be kept.
		skip := len(p) - len(r.buf)
		r.end += int64(skip)
		p = p[skip:]
	}
	for len(p) > 0 {
		pos := int(r.end % int64(len(r.buf)))
		n := copy(r.buf[pos:], p)
		p = p[n:]
		r.end += int64(n)
	}
	if r.end-r.start > int64(len(r.buf)) {
		r.start = r.end - int64(len(r.buf))
	}
}

// grow resizes the storage to hold at least need bytes (at most max) and
// lays the held bytes out for the new length.
func (r *Log) grow(need int) {
	n := max(need, min(2*len(r.buf), r.max), min(minRingAlloc, r.max))
	nb := make([]byte, n)
	for o := r.start; o < r.end; {
		src := int(o % int64(len(r.buf)))
		dst := int(o % int64(n))
		c := min(len(r.buf)-src, n-dst, int(r.end-o))
		copy(nb[dst:dst+c], r.buf[src:src+c])
		o += int64(c)
	}
	r.buf = nb
}

// Slice copies out the held bytes [from, to); the caller keeps
// Start() <= from <= to <= End().
func (r *Log) Slice(from, to int64) []byte {
	out := make([]byte, 0, to-from)
	for o := from; o < to; {
		pos := int(o % int64(len(r.buf)))
		c := min(len(r.buf)-pos, int(to-o))
		out = append(out, r.buf[pos:pos+c]...)
		o += int64(c)
	}
	return out
}

// Start is the offset of the oldest byte still held.
func (r *Log) Start() int64 { return r.start }

// End is the offset after the newest byte: all bytes ever written.
func (r *Log) End() int64 { return r.end }
