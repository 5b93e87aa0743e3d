package pyro

import (
	"context"
	"time"

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

// MaxForkCount is the most forks one ForkWorkspace call makes.
const MaxForkCount = workspace.MaxForks

// ForkWorkspaceRequest makes Count workspaces from one workspace's memory
// and disk at this instant.
type ForkWorkspaceRequest struct {
	Workspace string `json:"workspace_id"`
	Count     int    `json:"count,omitempty"` // default 1, at most MaxForkCount
	// NamePrefix names the forks NamePrefix-1 ... NamePrefix-N ("" = unnamed).
	NamePrefix string `json:"name_prefix,omitempty"`
}

// WorkspaceForkResult is the source (still running, or still paused when
// it was paused) and its forks, all running.
type WorkspaceForkResult struct {
	Source Workspace   `json:"source"`
	Forks  []Workspace `json:"forks"`
	ForkMs int64       `json:"fork_ms"` // from the call until every fork answers
}

// ForkWorkspace makes Count new workspaces from the running (or paused)
// source's memory and disk at this instant; a running source is stopped
// only while its memory is saved (~0.1-0.2 s) and runs on with its shells
// and calls. Each fork has its own id, copy-on-write disk (nothing is
// copied; deleting the source never breaks a fork), network, published
// host ports, fresh kernel entropy and machine id; it keeps the source's
// processes and services, baseline (so diff shows the source's changes
// too), snapshots, history, secrets and labels plus forked_from.
func (c *Client) ForkWorkspace(ctx context.Context, req ForkWorkspaceRequest) (*WorkspaceForkResult, error) {
	start := time.Now()
	if req.Count == 0 {
		req.Count = 1
	}
	names, err := workspace.ForkNames(req.NamePrefix, req.Count)
	if err != nil {
		return nil, err
	}
	c.reapOrphans()
	m := c.workspaces(ctx)
	src, forks, err := m.Fork(ctx, req.Workspace, names)
	if err != nil {
		return nil, err
	}
	out := &WorkspaceForkResult{Source: c.toWorkspace(src, nil), Forks: []Workspace{}}
	for _, f := range forks {
		w, err := c.WorkspaceStatus(ctx, f.ID)
		if err != nil {
			return nil, err
		}
		out.Forks = append(out.Forks, *w)
	}
	out.ForkMs = time.Since(start).Milliseconds()
	return out, nil
}
