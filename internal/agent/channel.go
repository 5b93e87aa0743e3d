//go:build linux

package agent

import (
	"errors"
	"os"
	"sync"
	"time"
)

// channel is the agent's port as one session after another uses it. A
// session's end (yamux closes its conn) only unblocks the session's reads
// and writes, through deadlines, and leaves the port open: the next
// session's handshake then reads the very same port. A guest saved after a
// park, or restored in the middle of a session (a fork), so answers its
// next host without closing, finding and reopening its port: code that a
// restored machine would run cold (under TCG, ~50 ms of it).
//
// A channel whose host went away (a virtio port reads EOF while no host is
// attached) or that failed otherwise is not reused: next reports false and
// the port is reopened, as before.
type channel struct {
	f *os.File

	mu     sync.Mutex
	broken error // the first failure other than our own deadline
	closed bool  // the file itself is closed (it takes no deadlines)
}

func newChannel(f *os.File) *channel { return &channel{f: f} }

func (c *channel) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	if err != nil {
		c.fail(err)
	}
	return n, err
}

func (c *channel) Write(p []byte) (int, error) {
	n, err := c.f.Write(p)
	if err != nil {
		c.fail(err)
	}
	return n, err
}

// fail notes err unless it is the deadline Close set.
func (c *channel) fail(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken == nil {
		c.broken = err
	}
}

// Close ends the session that uses the channel: its blocked reads and
// writes return at once. The port stays open where it takes deadlines;
// otherwise it is closed for real (and next reports false).
func (c *channel) Close() error {
	if c.f.SetDeadline(time.Now()) == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.f.Close()
}

// next readies the channel for another session after one ended; false
// when the port must be closed and reopened instead.
func (c *channel) next() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil || c.closed {
		return false
	}
	return c.f.SetDeadline(time.Time{}) == nil
}

// failed reports whether a read or write failed: the host went away (a
// port without a host reads EOF at once) or the port broke.
func (c *channel) failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken != nil
}

// release closes the port (after the last session).
func (c *channel) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		_ = c.f.Close()
	}
}
