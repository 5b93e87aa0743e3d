package pyro

import (
	"context"

	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/workspace"
)

// EnvironmentInfo is one catalog entry with its install state.
type EnvironmentInfo = env.Info

// EnvironmentManifest describes an installed environment: kernel and rootfs
// digests and sizes, the agent baked in, and the package list.
type EnvironmentManifest = env.Manifest

// PruneResult says what PruneEnvironments removed.
type PruneResult = env.PruneResult

// ListEnvironments returns the whole catalog with what is installed.
func (c *Client) ListEnvironments(ctx context.Context) ([]EnvironmentInfo, error) {
	return c.envs.List(ctx)
}

// PullEnvironment builds (or, when already installed, verifies and repairs)
// an environment. force rebuilds it from scratch.
func (c *Client) PullEnvironment(ctx context.Context, name string, force bool) (*EnvironmentManifest, error) {
	e, err := c.envs.Pull(ctx, name, force)
	if err != nil {
		return nil, err
	}
	return e.Manifest, nil
}

// InspectEnvironment returns the manifest of an installed environment.
func (c *Client) InspectEnvironment(ctx context.Context, name string) (*EnvironmentManifest, error) {
	return c.envs.Inspect(ctx, name)
}

// PruneEnvironments removes cached environments, kernels and leftovers that
// nothing uses, then the run snapshots whose environment image is gone.
// Environments a workspace or VM was created from are kept: their disks are
// overlays over those images.
func (c *Client) PruneEnvironments(ctx context.Context) (PruneResult, error) {
	inUse := map[string]bool{}
	for _, m := range []interface {
		List(context.Context) ([]*workspace.Record, error)
	}{c.workspaces(ctx), c.machines()} {
		recs, err := m.List(ctx)
		if err != nil {
			return PruneResult{}, err
		}
		for _, r := range recs {
			inUse[r.Environment] = true
		}
	}
	res, err := c.envs.Prune(ctx, func(name string) bool { return inUse[name] })
	if err != nil {
		return res, err
	}
	c.pruneSnapshots(&res)
	return res, nil
}
