package pyro

import (
	"context"

	"github.com/pyrovm/pyro/internal/workspace"
)

// WorkspacePauseResult is a paused workspace: its memory, devices and disk
// are saved in its dir and no host process runs for it.
type WorkspacePauseResult struct {
	Workspace
	PauseMs    int64 `json:"pause_ms"`    // the pause itself, up to the state on disk
	StateBytes int64 `json:"state_bytes"` // the saved memory and device state
	// ShellsEnded are the shells the pause closed (shells do not survive a
	// pause; processes, services and background jobs do).
	ShellsEnded []string `json:"shells_ended,omitempty"`
}

// WorkspaceResumeResult is a resumed workspace.
type WorkspaceResumeResult struct {
	Workspace
	// Restored is true when the saved machine came back: processes keep
	// their PIDs, services their state. False when the workspace was
	// running already, or when the state could not be restored and it
	// booted cold from its disk: then RestoreError says why.
	Restored     bool   `json:"restored"`
	RestoreError string `json:"restore_error,omitempty"`
	ResumeMs     int64  `json:"resume_ms,omitempty"` // restore (or cold boot) up to the agent's answer
}

// PauseWorkspace saves a running workspace's memory, devices and disk into
// its dir and ends its VM: a paused workspace holds no host process or
// memory. ResumeWorkspace, or any call that needs the VM, restores it.
func (c *Client) PauseWorkspace(ctx context.Context, ref string) (*WorkspacePauseResult, error) {
	r, meta, err := c.workspaces(ctx).Pause(ctx, ref)
	if err != nil {
		return nil, err
	}
	out := &WorkspacePauseResult{Workspace: c.toWorkspace(r, nil)}
	if meta != nil {
		out.PauseMs, out.StateBytes, out.ShellsEnded = meta.PauseMs, meta.StateBytes, meta.Shells
	}
	return out, nil
}

// ResumeWorkspace restores a paused workspace: processes go on with their
// PIDs, services stay ready, published ports are opened again, and the
// guest's clock, random state and network are set afresh. A state that
// fails to restore falls back to a cold boot of the disk (the result says
// so). A running workspace is answered as is.
func (c *Client) ResumeWorkspace(ctx context.Context, ref string) (*WorkspaceResumeResult, error) {
	c.reapOrphans()
	r, res, err := c.workspaces(ctx).Resume(ctx, ref)
	if err != nil {
		return nil, err
	}
	w, err := c.WorkspaceStatus(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	out := &WorkspaceResumeResult{Workspace: *w}
	if res != nil {
		out.Restored, out.RestoreError, out.ResumeMs = res.Restored, res.RestoreError, res.ResumeMs
	}
	return out, nil
}

// ttlAction is a recorded TTL action as the faces show it.
func ttlAction(a string) string {
	if a == "" {
		return workspace.TTLDelete
	}
	return a
}
