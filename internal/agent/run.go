//go:build linux

package agent

import (
	"context"
	"errors"
	"log"
	"os"
	"runtime/debug"
	"time"

	"github.com/hashicorp/yamux"

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
	}
	for {
		serveOnce(opts)
	}
}

// serveOnce runs one yamux session on the port. A session ends whenever the
// host disconnects: a virtio console port reads EOF while no host is
// attached, so the loop in Run keeps reopening it.
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
	// The error is just how the session ended (usually host EOF); logging it
	// would flood the console while no host is attached. A session the host
	// broke off by a new handshake (a restored fork meets its own host's
	// Hail) reopens at once: that host is waiting.
	err = Serve(context.Background(), port, opts)
	if !errors.Is(err, yamux.ErrInvalidVersion) {
		time.Sleep(reopenDelay)
	}
}
