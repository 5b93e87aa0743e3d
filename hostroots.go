package pyro

import (
	"context"
	"path/filepath"

	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/env/oci"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/hostpath"
)

// HostRoot grants a confined Client one host directory.
type HostRoot struct {
	Path  string `json:"path"`            // the directory; it must not itself be a symlink
	Write bool   `json:"write"`           // exports may create files beneath it
	Label string `json:"label,omitempty"` // what it is for ("project", "exports"), shown in errors
	// RealPath is the directory actually opened (parents' symlinks
	// resolved); set by HostRoots.
	RealPath string `json:"real_path,omitempty"`
}

// WithHostRoots confines every host path the Client is given (seed and
// sync push sources, secret files, export and disk export outputs) to these
// directories, for a Client that acts for someone other than its operator,
// such as a model over MCP. Each directory is opened once, in New, and every
// later access is made relative to it, so ".." and symlinks (anywhere in the
// path) cannot leave it; anything else fails with code host_path_denied.
// Relative paths are taken relative to the first root (reads) or the first
// writable root (outputs). With no roots, every host path is denied.
//
// Without this option a Client opens any host path its process can: the
// CLI's and an SDK program's caller is the operator.
func WithHostRoots(roots ...HostRoot) Option {
	return func(c *Client) {
		c.hostGrants = make([]hostpath.Grant, len(roots))
		for i, r := range roots {
			c.hostGrants[i] = hostpath.Grant{Path: r.Path, Write: r.Write, Label: r.Label}
		}
	}
}

// HostRoots lists the directories a confined Client may use, and whether
// it is confined at all (false: any host path).
func (c *Client) HostRoots() ([]HostRoot, bool) {
	if !c.host.Confined() {
		return nil, false
	}
	var out []HostRoot
	for _, r := range c.host.Roots() {
		out = append(out, HostRoot{Path: r.Path, Write: r.Write, Label: r.Label, RealPath: r.Real})
	}
	return out, true
}

// Close releases what the Client holds open (the directories of
// WithHostRoots). A Client is not used after Close.
func (c *Client) Close() error { return c.host.Close() }

// Confine returns a Client with c's settings (state, cache, agent, VMM,
// progress, logger, registries and pull policy) whose host paths are confined to roots, as
// WithHostRoots does. Close it when done.
func (c *Client) Confine(roots ...HostRoot) (*Client, error) {
	return New(WithStateDir(c.stateDir), WithCacheDir(c.cacheDir), WithAgentPath(c.agentPath),
		WithPyroBinary(c.pyroBin), WithAccel(c.accel), WithBackend(c.backendName), WithProgress(c.progress), WithLogger(c.log),
		WithHostRoots(roots...), func(cc *Client) { cc.insecure, cc.allowPull = c.insecure, c.allowPull })
}

// ExportsDir is the directory `pyro mcp serve` grants for exports unless
// told otherwise: a directory under the state dir.
func (c *Client) ExportsDir() string { return filepath.Join(c.stateDir, "exports") }

// checkEnvHostPath applies a confined Client's roots to an environment that
// names host files (oci-layout:DIR, docker-archive:FILE): like any host path
// a model names, it must lie beneath a granted root.
func (c *Client) checkEnvHostPath(name string) error {
	if !c.host.Confined() || env.IsCatalogName(name) {
		return nil
	}
	r, err := oci.Parse(name)
	if err != nil || !r.Local() {
		return nil // the store explains a bad reference itself
	}
	src, err := c.host.OpenSource(r.Path())
	if err != nil {
		return err
	}
	return src.Close()
}

// ensureEnv installs an environment when needed (an image reference is
// pulled on first use) and returns it.
func (c *Client) ensureEnv(ctx context.Context, name string) (*env.Environment, error) {
	if err := c.checkEnvHostPath(name); err != nil {
		return nil, err
	}
	e, err := c.envs.Ensure(c.envCtx(ctx), name)
	if errdefs.CodeOf(err) == errdefs.CodeEnvironmentMissing {
		if e, ok, berr := c.rebuildStale(ctx, name); ok {
			return e, berr
		}
	}
	return e, err
}
