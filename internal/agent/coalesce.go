package agent

import (
	"encoding/binary"
	"io"
)

// yamux writes a data frame as two writes, its 12-byte header and then its
// body. On the virtio-serial port every write is a buffer the host is told
// about (a VM exit under emulation), so joinFrames holds a data frame's
// header back and writes it together with the body that follows: one write
// per frame. Frames without a body (window updates, pings, go away) pass as
// they come. Only yamux's send loop writes, one frame at a time, so the
// body is always the next write.
type joinFrames struct {
	io.ReadWriteCloser
	hdr []byte // a data frame's header waiting for its body
	buf []byte
}

const (
	yamuxHeaderSize = 12
	yamuxTypeData   = 0
)

func (j *joinFrames) Write(p []byte) (int, error) {
	if j.hdr == nil {
		if len(p) == yamuxHeaderSize && p[1] == yamuxTypeData && binary.BigEndian.Uint32(p[8:12]) > 0 {
			j.hdr = append(j.buf[:0], p...)
			return len(p), nil
		}
		return j.ReadWriteCloser.Write(p)
	}
	frame := append(j.hdr, p...)
	j.hdr, j.buf = nil, frame[:0]
	n, err := j.ReadWriteCloser.Write(frame)
	return max(0, n-yamuxHeaderSize), err
}
