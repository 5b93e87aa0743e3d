package pyro

import (
	"context"

	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/workspace"
)

// PullEnvironmentRequest names what PullEnvironment installs.
type PullEnvironmentRequest struct {
	// Environment is a catalog name or an image reference
	// ("python:3.12-slim", "registry.example.com/team/img:1",
	// "oci-layout:DIR[:TAG]", "docker-archive:FILE.tar").
	Environment string `json:"environment"`
	// Force rebuilds (catalog: fresh packages) or re-pulls even when
	// installed; false verifies and repairs what is installed.
	Force bool `json:"force,omitempty"`
	// DiskSize is the size in bytes of an image environment's root
	// filesystem (sparse: only what is written takes space); 0 = the
	// image's content plus headroom for workspaces.
	DiskSize int64 `json:"disk_size,omitempty"`
}

// PushEnvironmentRequest names what PushEnvironment publishes where.
type PushEnvironmentRequest struct {
	Environment string `json:"environment"` // an installed catalog name or pulled reference
	Reference   string `json:"reference"`   // the registry tag to push to
}

// ListEnvironments returns the catalog with what is installed, then every
// pulled image reference (source "oci", with its digest).
func (c *Client) ListEnvironments(ctx context.Context) ([]EnvironmentInfo, error) {
	list, err := c.envs.List(ctx)
	return toEnvironmentInfos(list), err
}

// PullEnvironment builds (or, when already installed, verifies and repairs)
// a catalog environment, or pulls an OCI image reference and converts it
// into an environment. A reference whose digest is already converted is a
// no-op unless req.Force.
func (c *Client) PullEnvironment(ctx context.Context, req PullEnvironmentRequest) (*EnvironmentManifest, error) {
	name := req.Environment
	if err := c.checkEnvHostPath(name); err != nil {
		return nil, err
	}
	e, err := c.envs.PullWith(c.envCtx(ctx), name, env.PullOptions{Force: req.Force, DiskSize: req.DiskSize})
	if err != nil {
		return nil, err
	}
	return toManifest(e.Manifest), nil
}

// PushEnvironment publishes an installed environment (a catalog name or a
// pulled reference) to req.Reference, a registry tag, as a pyro environment artifact:
// an OCI manifest of artifactType application/vnd.pyro.environment.v1+json
// whose config is the environment's manifest and whose layers are the
// guest kernel and the root filesystem, zstd-compressed (docs/environments.md).
// Pulling that reference, or a catalog name from the environment registry
// (WithEnvRegistry), then installs it as is, without building anything.
// Credentials come from the Docker config; plain HTTP only to registries
// named by WithInsecureRegistries.
func (c *Client) PushEnvironment(ctx context.Context, req PushEnvironmentRequest) (*PushResult, error) {
	if err := c.checkEnvHostPath(req.Environment); err != nil {
		return nil, err
	}
	r, err := c.envs.Push(c.envCtx(ctx), req.Environment, req.Reference)
	if err != nil {
		return nil, err
	}
	out := PushResult(*r)
	return &out, nil
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
	m, err := c.envs.Inspect(c.envCtx(ctx), name)
	return toManifest(m), err
}

// PruneEnvironments removes cached environments, images, layers, kernels
// and leftovers that nothing uses, then the run snapshots whose environment
// image is gone. Environments a workspace or VM was created from are kept:
// their disks (and snapshots) are overlays over those images.
func (c *Client) PruneEnvironments(ctx context.Context) (PruneResult, error) {
	inUse, rootfsInUse := map[string]bool{}, map[string]bool{}
	for _, m := range []interface {
		List(context.Context) ([]*workspace.Record, error)
	}{c.allWorkspaces(ctx), c.machines()} {
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
	out := toPruneResult(res)
	if err != nil {
		return out, err
	}
	c.pruneSnapshots(&out)
	return out, nil
}

// pruneSnapshots removes snapshots whose environment image is gone (or that
// are otherwise invalid), after an environment prune.
func (c *Client) pruneSnapshots(res *PruneResult) {
	for _, r := range c.oneshot().PruneSnapshots() {
		name := r.ID
		if r.Environment != "" {
			name = r.Environment + " " + r.ID
		}
		res.Removed = append(res.Removed, PrunedItem{Kind: "run_snapshot", Name: name, Path: r.Path, Bytes: r.Bytes})
		res.BytesFreed += r.Bytes
	}
}
