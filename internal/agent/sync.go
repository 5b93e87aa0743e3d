//go:build linux

package agent

import (
	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// sync flushes every filesystem, so that a stop or a disk copy that follows
// sees what the guest wrote.
func (s *server) sync(fw *frameWriter) error {
	unix.Sync()
	return fw.json(agentproto.FrameResult, struct{}{})
}
