package pyro

import (
	"context"
	"time"

	"github.com/pyrovm/pyro/internal/vmm"
	"github.com/pyrovm/pyro/internal/workspace"
)

// WorkspaceSnapshot is a named copy of a workspace's /workspace, kept on the
// host as a normalized archive (like the baseline). Reset can return to it.
type WorkspaceSnapshot struct {
	WorkspaceID string    `json:"workspace_id"`
	Name        string    `json:"name"`
	CreatedAt   time.Time `json:"created_at"`
	Entries     int       `json:"entries"` // files, dirs and symlinks
	Bytes       int64     `json:"bytes"`   // file content bytes
	// Special files (fifos, sockets, device nodes) left out, and the first 100 of them.
	Skipped      int           `json:"skipped,omitempty"`
	SkippedFiles []SkippedFile `json:"skipped_files,omitempty"`
}

// ResetWorkspaceRequest rebuilds a workspace's sandbox.
type ResetWorkspaceRequest struct {
	Workspace string `json:"workspace_id"`       // id or name
	Snapshot  string `json:"snapshot,omitempty"` // a snapshot's name, or "baseline" (the default)
}

func toSnapshot(id string, s workspace.SnapshotInfo) WorkspaceSnapshot {
	return WorkspaceSnapshot{WorkspaceID: id, Name: s.Name, CreatedAt: s.CreatedAt, Entries: s.Entries, Bytes: s.Bytes,
		Skipped: s.Skipped.Count, SkippedFiles: mapSlice(s.Skipped.Files, toSkipped)}
}

// SnapshotRequest names one snapshot of a workspace.
type SnapshotRequest struct {
	Workspace string `json:"workspace_id"` // id or name
	// Name is 1-63 letters, digits, '.', '_' or '-', starting with a letter
	// or digit; "baseline" is reserved.
	Name string `json:"name"`
}

// CreateSnapshot saves the running workspace's /workspace under name.
// Errors: workspace_stopped, snapshot_exists, invalid_argument (bad or
// reserved name: "baseline").
func (c *Client) CreateSnapshot(ctx context.Context, req SnapshotRequest) (*WorkspaceSnapshot, error) {
	r, s, err := c.workspaces(ctx).CreateSnapshot(ctx, req.Workspace, req.Name)
	if err != nil {
		return nil, err
	}
	out := toSnapshot(r.ID, *s)
	return &out, nil
}

// ListSnapshots returns the workspace's snapshots, oldest first.
func (c *Client) ListSnapshots(ctx context.Context, ref string) ([]WorkspaceSnapshot, error) {
	r, ss, err := c.workspaces(ctx).Snapshots(ref)
	if err != nil {
		return nil, err
	}
	out := make([]WorkspaceSnapshot, 0, len(ss))
	for _, s := range ss {
		out = append(out, toSnapshot(r.ID, s))
	}
	return out, nil
}

// DeleteSnapshot removes a snapshot (snapshot_not_found when there is none
// of that name) and returns what it was.
func (c *Client) DeleteSnapshot(ctx context.Context, req SnapshotRequest) (*WorkspaceSnapshot, error) {
	r, s, err := c.workspaces(ctx).DeleteSnapshot(ctx, req.Workspace, req.Name)
	if err != nil {
		return nil, err
	}
	out := toSnapshot(r.ID, *s)
	return &out, nil
}

// ResetWorkspace rebuilds the workspace's sandbox: a fresh VM (booted as
// create boots one) whose /workspace holds the baseline or the named
// snapshot. Shells, services and the command history are gone; id, name,
// labels, TTL, baseline, snapshots and the diff's reference (the baseline)
// stay. If it fails, the workspace is left stopped as it was before.
func (c *Client) ResetWorkspace(ctx context.Context, req ResetWorkspaceRequest) (*Workspace, error) {
	m := c.workspaces(ctx)
	r, err := m.Resolve(req.Workspace)
	if err != nil {
		return nil, err
	}
	if err := workspace.CheckResetSource(r, req.Snapshot); err != nil {
		return nil, err // before any VM work
	}
	c.reapOrphans()
	restore := c.resetRestore(ctx, r)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.report(ctx, ProgressEvent{Stage: "boot", Message: "rebuilding workspace " + r.ID})
	rec, src, err := m.Reset(ctx, r.ID, req.Snapshot, restore)
	if err != nil {
		return nil, err
	}
	w, err := c.WorkspaceStatus(ctx, rec.ID)
	if err != nil {
		return nil, err
	}
	w.ResetFrom = src
	return w, nil
}

// resetRestore is the saved machine a reset restores, when the workspace's
// environment is still the installed one (its disk is pinned to that exact
// image); otherwise the reset boots cold.
func (c *Client) resetRestore(ctx context.Context, r *workspace.Record) *workspace.Restore {
	e, err := c.envs.Get(ctx, r.Environment)
	if err != nil || e.KernelPath != r.KernelPath || e.RootfsPath != r.RootfsPath {
		c.log.Debug("reset boots cold: the workspace's environment is not the installed one", "workspace", r.ID, "err", err)
		return nil
	}
	return c.workspaceRestore(ctx, e, r.VCPUCount, r.MemMiB, vmm.Accel(r.Accel), r.GuestTSCKHz, recordPolicy(r.NetworkPolicy))
}
