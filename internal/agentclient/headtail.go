package agentclient

import "fmt"

// Output over its cap keeps its head and its tail, as the agent's own cap
// does (internal/agent/output.go): a build log's errors are at its end.
// Caps below minTailCap keep the head only.
const (
	minTailCap    = 4 << 10
	markerReserve = 64 // room for the omission marker line
)

// headTail keeps at most max bytes of one output stream: the first ones,
// and with a cap of at least minTailCap the last quarter of the cap, with a
// marker line saying how much was left out in between.
type headTail struct {
	max   int64
	head  []byte
	tail  []byte // ring of the newest bytes past the head; nil: head only
	pos   int    // next write position in tail
	total int64  // bytes ever written
}

func newHeadTail(max int64) *headTail {
	h := &headTail{max: max}
	if max >= minTailCap {
		h.tail = make([]byte, 0, max/4+markerReserve)
	}
	return h
}

func (h *headTail) headCap() int64 { return h.max - int64(cap(h.tail)) }

func (h *headTail) write(p []byte) {
	h.total += int64(len(p))
	if room := h.headCap() - int64(len(h.head)); room > 0 {
		n := min(int64(len(p)), room)
		h.head = append(h.head, p[:n]...)
		p = p[n:]
	}
	if h.tail == nil {
		return
	}
	for len(p) > 0 {
		if len(h.tail) < cap(h.tail) {
			n := min(len(p), cap(h.tail)-len(h.tail))
			h.tail = append(h.tail, p[:n]...)
			p = p[n:]
			continue
		}
		n := copy(h.tail[h.pos:], p)
		p = p[n:]
		h.pos = (h.pos + n) % len(h.tail)
	}
}

func (h *headTail) truncated() bool { return h.total > int64(len(h.head)+len(h.tail)) }

// bytes is what was kept: all of it, or head, marker and tail.
func (h *headTail) bytes() []byte {
	kept := append(append([]byte(nil), h.tail[h.pos:]...), h.tail[:h.pos]...)
	if !h.truncated() || h.tail == nil {
		return append(h.head, kept...)
	}
	keep := kept[markerReserve:]
	omitted := h.total - int64(len(h.head)) - int64(len(keep))
	out := append(h.head, fmt.Appendf(nil, "\n[... pyro: %d bytes omitted ...]\n", omitted)...)
	return append(out, keep...)
}
