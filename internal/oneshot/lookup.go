package oneshot

import (
	"context"

	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/snapshot"
	"github.com/pyrovm/pyro/internal/vm"
)

// What prepare, readiness and prune ask of the run snapshots.

// Key names spec's machine in the snapshot store (an error: no snapshot
// can be keyed on this host).
func (c *Runner) Key(ctx context.Context, e *env.Environment, spec vm.Spec) (snapshot.Key, error) {
	return c.snapshotKey(ctx, c.snapshots(), e, spec)
}

// Lookup returns the valid snapshot of spec's machine without making one.
func (c *Runner) Lookup(ctx context.Context, e *env.Environment, spec vm.Spec) (*snapshot.Snapshot, error) {
	key, err := c.Key(ctx, e, spec)
	if err != nil {
		return nil, err
	}
	return c.snapshots().Lookup(key, e.RootfsPath)
}

// Drop removes the snapshot of spec's machine, if any, so that the next
// lookup makes a new one.
func (c *Runner) Drop(ctx context.Context, e *env.Environment, spec vm.Spec) error {
	snap, err := c.Lookup(ctx, e, spec)
	if err != nil {
		return nil // no key or no snapshot: nothing to drop
	}
	return c.snapshots().Remove(snap)
}

// PruneSnapshots removes snapshots whose environment image is gone (or that
// are otherwise invalid), after an environment prune.
func (c *Runner) PruneSnapshots() []snapshot.Removed {
	return c.snapshots().Prune(nil)
}
