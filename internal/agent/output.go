//go:build linux

package agent

import (
	"fmt"
	"io"
	"math"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// chunkSize bounds one output frame.
const chunkSize = 32 << 10

// Output over the limit keeps its head and its tail: a build log's errors
// are at its end. Limits below minTailLimit keep the head only.
const (
	minTailLimit  = 4 << 10
	markerReserve = 64 // room for the omission marker line
)

// output drains one of the command's pipes into frames of one kind. The
// first bytes go out as they come; with a limit of at least minTailLimit,
// the last quarter of the limit is kept in a ring instead and sent at the
// end, after a marker line saying how much was left out in between. It
// keeps reading past the limit so the command never blocks on a full pipe.
type output struct {
	kind     byte
	limit    int64 // bytes to forward at most, marker included
	produced int64
	sent     int64 // command bytes forwarded (head and tail)
	tail     *ring // nil: head only
}

func (o *output) headLimit() int64 {
	if o.limit == agentproto.NoOutputCap {
		return math.MaxInt64
	}
	if o.limit < minTailLimit {
		return o.limit
	}
	if o.tail == nil {
		o.tail = &ring{buf: make([]byte, o.limit/4+markerReserve)}
	}
	return o.limit - int64(len(o.tail.buf))
}

func (o *output) drain(r io.Reader, fw *frameWriter) {
	head := o.headLimit()
	buf := make([]byte, chunkSize)
	for {
		n, err := r.Read(buf)
		o.produced += int64(n)
		chunk := buf[:n]
		if room := head - o.sent; len(chunk) > 0 && room > 0 {
			part := chunk[:min(int64(len(chunk)), room)]
			// A failed write means the host is gone; cancellation handles that.
			_ = fw.frame(o.kind, part)
			o.sent += int64(len(part))
			chunk = chunk[len(part):]
		}
		if o.tail != nil && len(chunk) > 0 {
			o.tail.write(chunk)
		}
		if err != nil {
			break
		}
	}
	o.flushTail(fw)
}

// flushTail sends what the ring kept: all of it when nothing was left out,
// else a marker line and the last quarter of the limit.
func (o *output) flushTail(fw *frameWriter) {
	if o.tail == nil || o.tail.total == 0 {
		return
	}
	kept := o.tail.bytes()
	if o.tail.total > int64(len(o.tail.buf)) {
		keep := kept[markerReserve:]
		omitted := o.produced - o.sent - int64(len(keep))
		_ = fw.frame(o.kind, fmt.Appendf(nil, "\n[... pyro: %d bytes omitted ...]\n", omitted))
		kept = keep
	}
	for len(kept) > 0 {
		part := kept[:min(len(kept), chunkSize)]
		_ = fw.frame(o.kind, part)
		o.sent += int64(len(part))
		kept = kept[len(part):]
	}
}

func (o *output) truncated() bool { return o.produced > o.sent }

// ring keeps the last len(buf) bytes written to it.
type ring struct {
	buf   []byte
	pos   int   // next write position
	total int64 // bytes ever written
}

func (r *ring) write(p []byte) {
	r.total += int64(len(p))
	if len(p) >= len(r.buf) {
		copy(r.buf, p[len(p)-len(r.buf):])
		r.pos = 0
		return
	}
	n := copy(r.buf[r.pos:], p)
	copy(r.buf, p[n:])
	r.pos = (r.pos + len(p)) % len(r.buf)
}

// bytes returns what is kept, oldest first.
func (r *ring) bytes() []byte {
	if r.total < int64(len(r.buf)) {
		return append([]byte(nil), r.buf[:r.total]...)
	}
	return append(append([]byte(nil), r.buf[r.pos:]...), r.buf[:r.pos]...)
}
