//go:build linux

package agent

import "io"

// chunkSize bounds one output frame.
const chunkSize = 32 << 10

// output drains one of the command's pipes into frames of one kind. It keeps
// reading past the forwarding limit so the command never blocks on a full
// pipe, only counting what it discards.
type output struct {
	kind     byte
	limit    int64 // bytes to forward at most
	produced int64
	sent     int64
}

func (o *output) drain(r io.Reader, fw *frameWriter) {
	buf := make([]byte, chunkSize)
	for {
		n, err := r.Read(buf)
		o.produced += int64(n)
		if room := o.limit - o.sent; n > 0 && room > 0 {
			chunk := buf[:min(int64(n), room)]
			// A failed write means the host is gone; cancellation handles that.
			_ = fw.frame(o.kind, chunk)
			o.sent += int64(len(chunk))
		}
		if err != nil {
			return
		}
	}
}

func (o *output) truncated() bool { return o.produced > o.sent }
