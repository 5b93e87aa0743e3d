//go:build linux

package agent

import (
	"net"
	"sync/atomic"
	"time"
)

// cancelWatch turns the host closing the stream of a call that only writes
// (after its request the host sends nothing) into a cancel: it raises a flag
// and unblocks the writer stuck on a full stream window.
type cancelWatch struct {
	stream net.Conn
	gone   atomic.Bool
	stop   chan struct{}
	done   chan struct{}
}

func watchCancel(stream net.Conn, fw *frameWriter) *cancelWatch {
	w := &cancelWatch{stream: stream, stop: make(chan struct{}), done: make(chan struct{})}
	hostGone := watchHost(stream)
	go func() {
		defer close(w.done)
		select {
		case <-hostGone:
			select {
			case <-w.stop:
				return // close's read deadline, not the host
			default:
			}
			w.gone.Store(true)
			fw.abort()
		case <-w.stop:
		}
	}()
	return w
}

func (w *cancelWatch) canceled() bool { return w.gone.Load() }

// close ends the watch without cancelling anything (the final frame is still
// to be written).
func (w *cancelWatch) close() {
	close(w.stop)
	<-w.done
	_ = w.stream.SetReadDeadline(time.Now()) // ends watchHost's reader
}
