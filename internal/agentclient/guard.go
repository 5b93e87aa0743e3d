package agentclient

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// yamux frame header, as the guest sends it (github.com/hashicorp/yamux
// const.go): version(1) type(1) flags(2) stream(4) length(4), big endian.
const (
	yamuxHeaderSize  = 12
	yamuxTypeData    = 0
	yamuxTypeGoAway  = 3
	yamuxFlagSYN     = 1
	yamuxMaxDataBody = 256 << 10 // the receive window we grant: a data frame never exceeds it
)

// Bounds of the guest's byte stream.
const (
	// frameStall is how long one frame (header and body) may take to arrive
	// once its first byte has: the agent writes a frame at once, so a guest
	// that stops mid-frame is broken or lying about a length.
	frameStall = 15 * time.Second
)

// errProtocol marks a session ended by the guest breaking the protocol.
var errProtocol = errors.New("guest broke the agent protocol")

// guardConn sits between the agent channel and yamux and checks every yamux
// frame header the guest sends before yamux acts on it. The stream library
// trusts its peer: a data frame for an unknown stream announcing 256 MiB made
// it wait for that body for minutes while every other call stalled. Here a
// header with a body above the window, an unknown version or type, a
// go-away, or a stream opened by the guest (only the host opens streams)
// ends the session
// at once, and so does a frame that does not arrive in full within
// frameStall. Idle time between frames is not bounded: calls bound that.
type guardConn struct {
	net.Conn
	stall time.Duration

	mu       sync.Mutex // Read is called by yamux's one receive loop; mu guards err for Err
	hdr      [yamuxHeaderSize]byte
	hdrN     int    // header bytes seen of the current frame
	body     uint32 // body bytes still to come
	deadline time.Time
	err      error
}

func newGuardConn(c net.Conn) *guardConn { return &guardConn{Conn: c, stall: frameStall} }

func (g *guardConn) Read(p []byte) (int, error) {
	if err := g.Err(); err != nil {
		return 0, err
	}
	midFrame := g.hdrN > 0 || g.body > 0
	if midFrame {
		_ = g.Conn.SetReadDeadline(g.deadline)
	} else {
		_ = g.Conn.SetReadDeadline(time.Time{})
	}
	n, err := g.Conn.Read(p)
	if verr := g.scan(p[:n]); verr != nil {
		return 0, g.fail(verr)
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, g.fail(fmt.Errorf("%w: a frame did not arrive in full within %s", errProtocol, g.stall))
	}
	return n, err
}

// scan follows the frame boundaries through b and checks each header.
func (g *guardConn) scan(b []byte) error {
	for len(b) > 0 {
		if g.body > 0 {
			k := min(uint32(len(b)), g.body)
			g.body -= k
			b = b[k:]
			continue
		}
		if g.hdrN == 0 {
			g.deadline = time.Now().Add(g.stall)
		}
		k := copy(g.hdr[g.hdrN:], b)
		g.hdrN += k
		b = b[k:]
		if g.hdrN < yamuxHeaderSize {
			continue
		}
		g.hdrN = 0
		if err := g.check(); err != nil {
			return err
		}
	}
	return nil
}

func (g *guardConn) check() error {
	h := g.hdr
	version, typ := h[0], h[1]
	flags := binary.BigEndian.Uint16(h[2:4])
	length := binary.BigEndian.Uint32(h[8:12])
	switch {
	case version != 0:
		return fmt.Errorf("%w: frame version %d", errProtocol, version)
	case typ > yamuxTypeGoAway:
		return fmt.Errorf("%w: frame type %d", errProtocol, typ)
	case flags&yamuxFlagSYN != 0 && typ != 2: // 2 is ping, whose SYN is a ping request
		return fmt.Errorf("%w: the guest tried to open a stream", errProtocol)
	case typ == yamuxTypeGoAway:
		// The agent never sends one; yamux would keep the session open but
		// refuse every new call, while the VM looked healthy.
		return fmt.Errorf("%w: the guest sent go-away", errProtocol)
	case typ == yamuxTypeData && length > yamuxMaxDataBody:
		return fmt.Errorf("%w: a frame announced %d bytes, above the %d-byte window", errProtocol, length, yamuxMaxDataBody)
	}
	if typ == yamuxTypeData {
		g.body = length // other types carry their value in length, no body
	}
	return nil
}

// fail records the first violation and closes the channel, which ends the
// yamux session and every call on it.
func (g *guardConn) fail(err error) error {
	g.mu.Lock()
	if g.err == nil {
		g.err = err
	}
	err = g.err
	g.mu.Unlock()
	_ = g.Conn.Close()
	return err
}

// Err is the violation that ended the session, or nil.
func (g *guardConn) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}
