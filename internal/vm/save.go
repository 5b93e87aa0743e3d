package vm

import (
	"context"
	"log/slog"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/guestexec"
	"github.com/pyrovm/pyro/internal/vmm"
)

// settleDelay is how long Save and Pause wait after closing the agent
// session when the VMM cannot report it (see detachAgent): the agent must
// have seen the host go away (its port reads EOF) and be back to reopening
// its port, so that a restored guest starts a fresh session with the next
// host instead of resuming this one.
const settleDelay = 300 * time.Millisecond

// Identity is backend b's part of the snapshot key of the machine spec
// describes (paths apart): a saved machine restores only into one with the
// same identity. cacheDir is where b may cache what is costly to ask.
func (spec Spec) Identity(ctx context.Context, b vmm.Backend, cacheDir string) (vmm.Identity, error) {
	return b.Identity(ctx, spec.config("x", "/x"), cacheDir)
}

// Save boots spec cold under backend b with its root disk in the overlay diskPath
// (created over spec.RootfsPath), waits for the agent, runs warm (a shell
// command, may be empty) once so that what it reads sits in the guest's page cache, parks
// the agent (parkAgent), and saves the machine's state to statePath. The VMM
// ends and the VM dir under root is removed; diskPath and statePath are the
// snapshot: a Boot with the same spec and Snapshot set to them restores it.
func Save(ctx context.Context, b vmm.Backend, root string, spec Spec, diskPath, statePath string, warm string, log *slog.Logger) error {
	spec.OverlayPath, spec.Snapshot = diskPath, nil
	v, err := boot(ctx, b, root, spec, true, log)
	if err != nil {
		return err
	}
	defer v.Close()
	if warm != "" {
		r, err := v.agent.Exec(ctx, guestexec.Shell(warm, nil, "/", time.Minute, 4096))
		if err != nil {
			return err
		}
		if r.ExitCode != 0 {
			return errdefs.New(errdefs.ErrInternal, errdefs.CodeVMMFailed,
				"snapshot warm-up %q exited %d: %s", warm, r.ExitCode, r.Stderr)
		}
	}
	if err := v.parkAgent(ctx); err != nil {
		return err
	}
	saver, ok := v.machine.(vmm.StateSaver)
	if !ok {
		return vmm.Unsupported(v.backend, "saving a running machine (fast-start snapshots)")
	}
	start := time.Now()
	if err := saver.SaveState(ctx, statePath); err != nil {
		return err
	}
	v.log.Debug("machine saved", "ms", time.Since(start).Milliseconds())
	return nil
}
