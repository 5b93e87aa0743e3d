package vm

import (
	"context"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
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
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeInternal, "this VMM cannot save machines")
	}
	begin := time.Now()
	sctx, cancel := context.WithTimeout(ctx, syncTimeout)
	if err := v.agent.Sync(sctx); err != nil {
		v.log.Warn("guest sync before pause failed", "err", err)
	}
	cancel()
	synced := time.Since(begin)
	begin = time.Now()
	if err := v.detachAgent(ctx); err != nil {
		return err
	}
	detached := time.Since(begin)
	start := time.Now()
	if err := saver.SaveState(ctx, statePath); err != nil {
		return err
	}
	v.log.Info("machine paused", "sync_ms", synced.Milliseconds(), "detach_ms", detached.Milliseconds(), "save_ms", time.Since(start).Milliseconds())
	return nil
}

// agentDetacher is a VMM that can tell when the guest agent has seen its
// session end (qemu.Machine.DetachAgent).
type agentDetacher interface {
	DetachAgent(ctx context.Context, closeHost func()) error
}

// detachAgent closes the agent session and returns once the guest agent is
// back to reopening its port, so that a machine saved from then on starts a
// fresh session with its next host. Where the VMM cannot tell, it waits
// settleDelay, which has been enough.
func (v *VM) detachAgent(ctx context.Context) error {
	if d, ok := v.machine.(agentDetacher); ok {
		closed := false
		err := d.DetachAgent(ctx, func() { closed = true; v.agent.Close() })
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		v.log.Warn("waiting for the guest agent to leave its session", "err", err)
		if closed {
			return nil // it waited detachWait already
		}
	}
	v.agent.Close()
	select {
	case <-time.After(settleDelay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
