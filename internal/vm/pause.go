package vm

import (
	"context"
	"time"

	"github.com/pyrovm/pyro/internal/vmm"
)

// Pause saves the running machine into statePath and ends its VMM: the
// state file plus the root disk as it is now (QEMU flushes it when the save
// completes) are the paused machine, which a Boot with Snapshot set to them
// restores. The guest's filesystems are flushed first, so that a cold boot
// of the disk alone (when the state cannot be restored) loses as little as
// possible. The agent session is closed before the save, as Save does: a
// restored guest then opens a fresh session with its next host. The VM must
// have been booted with Spec.Pausable; Close it afterwards.
func (v *VM) Pause(ctx context.Context, statePath string) error {
	saver, ok := v.machine.(vmm.StateSaver)
	if !ok {
		return vmm.Unsupported(v.backend, "saving a running machine (pause, fork)")
	}
	sctx, cancel := context.WithTimeout(ctx, syncTimeout)
	if err := v.agent.Sync(sctx); err != nil {
		v.log.Warn("guest sync before pause failed", "err", err)
	}
	cancel()
	v.agent.Close()
	select {
	case <-time.After(settleDelay):
	case <-ctx.Done():
		return ctx.Err()
	}
	start := time.Now()
	if err := saver.SaveState(ctx, statePath); err != nil {
		return err
	}
	v.log.Debug("machine paused", "ms", time.Since(start).Milliseconds())
	return nil
}
