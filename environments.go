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

// PushResult says what PushEnvironment published: the reference, the
// digest the registry holds it under, and the compressed sizes.
type PushResult = env.PushResult

// PruneResult says what PruneEnvironments removed.
type PruneResult = env.PruneResult

// PullOption tunes one PullEnvironment call.
type PullOption func(*env.PullOptions)

// WithDiskSize sets the size in bytes of an image environment's root
// filesystem (sparse: only what is written takes space). The default is the
// image's content plus headroom for workspaces.
func WithDiskSize(bytes int64) PullOption {
	return func(o *env.PullOptions) { o.DiskSize = bytes }
}

// ListEnvironments returns the catalog with what is installed, then every
// pulled image reference (source "oci", with its digest).
func (c *Client) ListEnvironments(ctx context.Context) ([]EnvironmentInfo, error) {
	return c.envs.List(ctx)
}

// PullEnvironment builds (or, when already installed, verifies and repairs)
// a catalog environment, or pulls an OCI image reference
// ("python:3.12-slim", "registry.example.com/team/img:1",
// "oci-layout:DIR[:TAG]", "docker-archive:FILE.tar") and converts it into
// an environment. A reference whose digest is already converted is a
// no-op. force rebuilds from scratch.
func (c *Client) PullEnvironment(ctx context.Context, name string, force bool, opts ...PullOption) (*EnvironmentManifest, error) {
	if err := c.checkEnvHostPath(name); err != nil {
		return nil, err
	}
	po := env.PullOptions{Force: force}
	for _, o := range opts {
		o(&po)
	}
	e, err := c.envs.PullWith(c.envCtx(ctx), name, po)
	if err != nil {
		return nil, err
	}
	return e.Manifest, nil
}

// PushEnvironment publishes an installed environment (a catalog name or a
// pulled reference) to ref, a registry tag, as a pyro environment artifact:
// an OCI manifest of artifactType application/vnd.pyro.environment.v1+json
// whose config is the environment's manifest and whose layers are the
// guest kernel and the root filesystem, zstd-compressed (docs/environments.md).
// Pulling ref, or a catalog name from the environment registry
// (WithEnvRegistry), then installs it as is, without building anything.
// Credentials come from the Docker config; plain HTTP only to registries
// named by WithInsecureRegistries.
func (c *Client) PushEnvironment(ctx context.Context, name, ref string) (*PushResult, error) {
	if err := c.checkEnvHostPath(name); err != nil {
		return nil, err
	}
	return c.envs.Push(c.envCtx(ctx), name, ref)
}

// envRegistry is the WithEnvRegistry value, else the configured one.
func envRegistry(set *string) (string, error) {
	if set == nil {
		return env.RegistryFromConfig()
	}
	if *set == "" {
		return "", nil
	}
	return env.CheckRegistry(*set, "WithEnvRegistry")
}

// InspectEnvironment returns the manifest of an installed environment.
func (c *Client) InspectEnvironment(ctx context.Context, name string) (*EnvironmentManifest, error) {
	if err := c.checkEnvHostPath(name); err != nil {
		return nil, err
	}
	return c.envs.Inspect(c.envCtx(ctx), name)
}

// PruneEnvironments removes cached environments, images, layers, kernels
// and leftovers that nothing uses, then the run snapshots whose environment
// image is gone. Environments a workspace or VM was created from are kept:
// their disks (and snapshots) are overlays over those images.
func (c *Client) PruneEnvironments(ctx context.Context) (PruneResult, error) {
	inUse, rootfsInUse := map[string]bool{}, map[string]bool{}
	for _, m := range []interface {
		List(context.Context) ([]*workspace.Record, error)
	}{c.workspaces(ctx), c.machines()} {
		recs, err := m.List(ctx)
		if err != nil {
			return PruneResult{}, err
		}
		for _, r := range recs {
			inUse[r.Environment] = true
			rootfsInUse[r.RootfsPath] = true
		}
	}
	res, err := c.envs.Prune(ctx, func(name, rootfs string) bool { return inUse[name] || (rootfs != "" && rootfsInUse[rootfs]) })
	if err != nil {
		return res, err
	}
	c.pruneSnapshots(&res)
	return res, nil
}

// pruneSnapshots removes snapshots whose environment image is gone (or that
// are otherwise invalid), after an environment prune.
func (c *Client) pruneSnapshots(res *PruneResult) {
	for _, r := range c.oneshot().PruneSnapshots() {
		name := r.ID
		if r.Environment != "" {
			name = r.Environment + " " + r.ID
		}
		res.Removed = append(res.Removed, env.PrunedItem{Kind: "run_snapshot", Name: name, Path: r.Path, Bytes: r.Bytes})
		res.BytesFreed += r.Bytes
	}
}
