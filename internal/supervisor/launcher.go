package supervisor

import (
	"context"
	"os"

	"golang.org/x/sys/unix"
)

// launcherWatch notices when the process that launched this supervisor
// dies before it hears that the supervisor is ready: its end of the ready
// pipe closes, and polling ours reports an error. Nobody will ever use this
// VM then (the create or reset that wanted it is gone, and the next pyro
// call rolls that back), so the boot is abandoned.
type launcherWatch struct {
	wake *os.File      // written by stop to end the poll
	done chan struct{} // closed when the watching goroutine returns
}

// watchLauncher cancels cancel when the reader of ready goes away, until
// stop is called. A nil ready (tests) watches nothing.
func watchLauncher(ready *os.File, cancel context.CancelFunc) *launcherWatch {
	w := &launcherWatch{done: make(chan struct{})}
	if ready == nil {
		close(w.done)
		return w
	}
	r, wake, err := os.Pipe()
	if err != nil {
		close(w.done)
		return w
	}
	w.wake = wake
	readyFd, wakeFd := int32(ready.Fd()), int32(r.Fd())
	go func() {
		defer close(w.done)
		defer r.Close()
		for {
			fds := []unix.PollFd{{Fd: readyFd}, {Fd: wakeFd, Events: unix.POLLIN}}
			if _, err := unix.Poll(fds, -1); err == unix.EINTR {
				continue
			} else if err != nil {
				return
			}
			if fds[1].Revents != 0 || fds[0].Revents&unix.POLLNVAL != 0 {
				return // stopped, or no pipe on that fd (run by hand)
			}
			if fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0 {
				cancel()
				return
			}
		}
	}()
	return w
}

// stop ends the watch and waits for it, so that ready can be closed safely.
func (w *launcherWatch) stop() {
	if w.wake != nil {
		_, _ = w.wake.Write([]byte{0})
		w.wake.Close()
		w.wake = nil
	}
	<-w.done
}
