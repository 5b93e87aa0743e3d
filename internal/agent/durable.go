//go:build linux

package agent

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// mutates reports whether op may write under the workspace and so must flush
// it before answering success: an answered write must survive a kill -9 of
// the supervisor or of QEMU, which drops whatever sat in the guest's page cache.
func mutates(op string) bool {
	switch op {
	case agentproto.OpExec, agentproto.OpPutArchive, agentproto.OpServiceStart, agentproto.OpShell:
		return true
	}
	return false
}

// syncfs writes the filesystem holding dir to its disk and waits for the
// disk's flush: with QEMU's cache=writeback that flush reaches the host file
// (fdatasync), and only then does the call answer. A guest without dir has
// nothing there to flush.
func syncfs(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}
