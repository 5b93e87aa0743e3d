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
// possible. The agent is parked before the save, as Save does: a restored
// guest then opens a fresh session with its next host. The VM must have been
// booted with Spec.Pausable; Close it afterwards.
func (v *VM) Pause(ctx context.Context, statePath string) error {
	saver, ok := v.machine.(vmm.StateSaver)
	if !ok {
		return vmm.Unsupported(v.backend, "saving a running machine (pause, fork)")
	}
	begin := time.Now()
	sctx, cancel := context.WithTimeout(ctx, syncTimeout)
	if err := v.agent.Sync(sctx); err != nil {
		v.log.Warn("guest sync before pause failed", "err", err)
	}
	cancel()
	synced := time.Since(begin)
	begin = time.Now()
	if err := v.parkAgent(ctx); err != nil {
		return err
	}
	detached := time.Since(begin)
	start := time.Now()
	if err := saver.SaveState(ctx, statePath); err != nil {
		// The parked agent serves no calls on this session: end it, so that
		// the caller's flush and power-off fail at once instead of waiting
		// out their bounds.
		v.agent.Close()
		return err
	}
	v.log.Info("machine paused", "sync_ms", synced.Milliseconds(), "park_ms", detached.Milliseconds(), "save_ms", time.Since(start).Milliseconds())
	return nil
}

// parkWait bounds the park call: the agent answers it at once.
const parkWait = 5 * time.Second

// parkAgent ends the agent session before a save so that the restored
// guest starts a fresh one with its next host. The agent parks (OpPark):
// it leaves the session but keeps its port open and waits in a read for
// the next Hail, which a restore then answers without running the code of
// a reopen. The host's end stays connected until the machine is saved and
// its VMM ends (a disconnect would send the guest back to reopening). An
// agent that does not park is detached the old way.
func (v *VM) parkAgent(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, parkWait)
	err := v.agent.Park(pctx)
	cancel()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	v.log.Warn("the guest agent did not park: detaching it", "err", err)
	return v.detachAgent(ctx)
}

// detachAgent closes the agent session and returns once the guest agent is
// back to reopening its port, so that a machine saved from then on starts a
// fresh session with its next host. A guest agent that never leaves its
// session is an error: a machine saved in the middle of one would not
// answer its restore (the host's first frames are lost while the guest
// closes its port), which would wait out the whole boot timeout. Where the
// VMM cannot tell, it waits settleDelay, as it always did.
func (v *VM) detachAgent(ctx context.Context) error {
	if d, ok := v.machine.(vmm.AgentDetacher); ok {
		closed := false
		err := d.DetachAgent(ctx, func() { closed = true; v.agent.Close() })
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case closed:
			return errdefs.Wrap(err, errdefs.ErrUnavailable, errdefs.CodeVMMFailed,
				"the guest agent did not leave its session: a machine saved now would not answer its restore")
		}
		v.log.Warn("cannot watch the guest agent leave its session: waiting a fixed time", "err", err)
	}
	v.agent.Close()
	select {
	case <-time.After(settleDelay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ForkSave saves the running machine into statePath for forks and lets it
// go on: its root disk is frozen as it is under newTop (a NewLayer over the
// disk file, which swap puts in the disk file's place before the guest
// runs again). The agent session stays open: a fork's guest drops it when
// its own host's handshake arrives (agentproto.AcceptSession). The guest
// is paused only for the save.
func (v *VM) ForkSave(ctx context.Context, statePath, newTop string, swap func() error) error {
	saver, ok := v.machine.(vmm.LiveSaver)
	if !ok {
		return vmm.Unsupported(v.backend, "saving a running machine for forks")
	}
	start := time.Now()
	if err := saver.ForkState(ctx, statePath, newTop, swap); err != nil {
		return err
	}
	v.log.Info("machine saved for forks", "save_ms", time.Since(start).Milliseconds())
	return nil
}
