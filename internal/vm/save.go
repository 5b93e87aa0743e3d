package vm

import (
	"context"
	"log/slog"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/vmm"
	"github.com/pyrovm/pyro/internal/vmm/qemu"
)

// settleDelay is how long Save and Pause wait after closing the agent
// session when the VMM cannot report it (see detachAgent): the agent must
// have seen the host go away (its port reads EOF) and be back to reopening
// its port, so that a restored guest starts a fresh session with the next
// host instead of resuming this one.
const settleDelay = 300 * time.Millisecond

// MachineDigest identifies the machine spec describes, paths apart: a saved
// machine restores only into one with the same digest.
func (spec Spec) MachineDigest() string { return qemu.MachineDigest(spec.config("x", "/x")) }

// Save boots spec cold with its root disk in the qcow2 overlay diskPath
// (created over spec.RootfsPath), waits for the agent, runs warm (a shell
// command, may be empty) once so that what it reads sits in the guest's page cache, closes
// the agent session, and saves the machine's state to statePath. The VMM
// ends and the VM dir under root is removed; diskPath and statePath are the
// snapshot: a Boot with the same spec and Snapshot set to them restores it.
func Save(ctx context.Context, root string, spec Spec, diskPath, statePath string, warm string, log *slog.Logger) error {
	spec.OverlayPath, spec.Snapshot = diskPath, nil
	v, err := boot(ctx, root, spec, true, log)
	if err != nil {
		return err
	}
	defer v.Close()
	if warm != "" {
		r, err := v.agent.Exec(ctx, agentproto.ExecRequest{Shell: warm, Cwd: "/", TimeoutMs: 60_000, MaxStdout: 4096, MaxStderr: 4096})
		if err != nil {
			return err
		}
		if r.ExitCode != 0 {
			return errdefs.New(errdefs.ErrInternal, errdefs.CodeVMMFailed,
				"snapshot warm-up %q exited %d: %s", warm, r.ExitCode, r.Stderr)
		}
	}
	if err := v.detachAgent(ctx); err != nil {
		return err
	}
	saver, ok := v.machine.(vmm.StateSaver)
	if !ok {
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeInternal, "this VMM cannot save machines")
	}
	start := time.Now()
	if err := saver.SaveState(ctx, statePath); err != nil {
		return err
	}
	v.log.Debug("machine saved", "ms", time.Since(start).Milliseconds())
	return nil
}
