//go:build linux

package agent

import (
	"encoding/json"
	"net"
	"sync"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// frameWriter serializes frames on one stream: the stdout and stderr copiers
// write concurrently and a frame must never be split by another. The first
// write error sticks, so later writers give up at once.
type frameWriter struct {
	mu   sync.Mutex
	conn net.Conn
	err  error
	// flush, when set, runs before a FrameResult goes out; if it fails the
	// call answers an error instead (success means the writes are on disk).
	flush func() error
	// flushed is how long the flush took (settle).
	flushed time.Duration
}

func (f *frameWriter) frame(kind byte, payload []byte) error {
	if kind == agentproto.FrameResult {
		if werr := f.settle(); werr != nil {
			kind = agentproto.FrameError
			payload, _ = json.Marshal(werr)
		}
	}
	return f.frameLocked(kind, payload)
}

// settle runs the flush now, once, so that a caller can report its cost in
// the result; the result frame then goes out without flushing again. A
// failed flush is the error to answer instead of the result.
func (f *frameWriter) settle() *agentproto.Error {
	if f.flush == nil {
		return nil
	}
	start := time.Now()
	err := f.flushNoticed()
	f.flush, f.flushed = nil, time.Since(start)
	switch {
	case err == nil:
		return nil
	case isNoSpace(err):
		return noSpace("the call finished but flushing %s to disk failed", agentproto.WorkspaceRoot)
	default:
		return wireError(agentproto.ErrCodeInternal,
			"the call finished but flushing %s to disk failed: %v", agentproto.WorkspaceRoot, err)
	}
}

// frameLocked writes one frame under the writer's lock.
func (f *frameWriter) frameLocked(kind byte, payload []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = agentproto.WriteFrame(f.conn, kind, payload)
	}
	return f.err
}

func (f *frameWriter) json(kind byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return f.frame(kind, b)
}

// flushNotice is how long a flush runs before the host is told about it
// (FrameFlushing), so that it waits for the result beyond the call's bound.
const flushNotice = time.Second

func (f *frameWriter) flushNoticed() error {
	done := make(chan error, 1)
	go func() { done <- f.flush() }()
	t := time.NewTimer(flushNotice)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		_ = f.frameLocked(agentproto.FrameFlushing, nil)
		return <-done
	}
}

// fail sends the final error frame; if the stream is already broken there is
// nobody left to tell.
func (f *frameWriter) fail(e *agentproto.Error) {
	_ = f.json(agentproto.FrameError, e)
}

// abort unblocks a writer stuck on a full stream window once the host has gone.
func (f *frameWriter) abort() {
	_ = f.conn.SetWriteDeadline(time.Now())
}
