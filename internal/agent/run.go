//go:build linux

package agent

import (
	"context"
	"log"
	"os"
	"runtime/debug"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// Timings of the serve loop.
const (
	portWait      = 10 * time.Second
	reopenDelay   = 20 * time.Millisecond
	noPortBackoff = time.Second
)

// Run is the agent's main: as PID 1 it sets up the system first, then it
// serves the agent port forever. It never returns: PID 1 exiting panics the
// kernel.
func Run() {
	log.SetFlags(0)
	log.SetPrefix("pyro-agent: ")
	opts := Options{}
	if os.Getpid() == 1 {
		initSystem()
		opts.PowerOff = powerOff
		// Before serving: finish or undo the file transfers a crash cut.
		recoverPuts(defaultStagingRoot, agentproto.WorkspaceRoot)
		makeReserve(newReserve(defaultStagingRoot).path)
	}
	// Reap orphans from the start, not only once the first command ran.
	r := sharedReaper()
	if os.Getpid() == 1 {
		groups := setupCgroups()
		r.mu.Lock()
		r.groups = groups
		r.mu.Unlock()
		if err := batchThreads(); err != nil {
			log.Printf("scheduling policy: %v (the agent's threads stay SCHED_OTHER)", err)
		}
	}
	for {
		serveOnce(opts)
	}
}

// serveOnce serves sessions on the port until its host goes away. A
// session ends whenever the host disconnects (a virtio console port reads
// EOF while no host is attached: the port is closed and, after a short
// delay, reopened by the loop in Run), or when a host's handshake or a park
// ends it: the next session's handshake then reads the same open port.
func serveOnce(opts Options) {
	defer func() {
		if r := recover(); r != nil {
			log.Printf("panic: %v\n%s", r, debug.Stack())
			time.Sleep(noPortBackoff)
		}
	}()
	port, err := openPort(agentproto.PortName, portWait)
	if err != nil {
		log.Printf("agent port: %v", err)
		time.Sleep(noPortBackoff)
		return
	}
	ch := newChannel(port)
	defer ch.release()
	serveChannel(ch, opts)
	if ch.failed() {
		time.Sleep(reopenDelay)
	}
}

// serveChannel serves one session after another on ch for as long as it
// can be reused (see channel).
func serveChannel(ch *channel, opts Options) {
	for {
		// The error is just how the session ended (usually host EOF);
		// logging it would flood the console while no host is attached.
		_ = Serve(context.Background(), ch, opts)
		if !ch.next() {
			return
		}
	}
}
