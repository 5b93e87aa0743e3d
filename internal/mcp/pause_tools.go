package mcp

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
)

// ttlActionProp describes ttl_action wherever a workspace's TTL is set.
var ttlActionProp = prop{desc: "What happens when ttl_seconds pass without activity: delete the workspace, or pause it " +
	"(its memory and disk are kept; the next call resumes it).", def: "delete", enum: []any{"delete", "pause"}}

const idlePauseDesc = "Pause the workspace after this many seconds without a call (0 = never): a paused workspace costs the host " +
	"no process or memory, and the next call that needs it resumes it transparently with its processes and services."

func addWorkspacePause(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Pause a running workspace: save its memory and disk and end its VM, so it costs the host nothing while unused. " +
			"Processes, services and background jobs go on after workspace_resume (or any call that needs the VM) with their PIDs; " +
			"open shells end. Result: the workspace (state paused) plus pause_ms, state_bytes and shells_ended. " + workspaceFields,
		InputSchema: inputSchema[workspaceRefInput](workspaceRefProps)}
	addTool(s, d, t, handler(func(ctx context.Context, in workspaceRefInput) (*pyro.WorkspacePauseResult, error) {
		return c.PauseWorkspace(ctx, in.WorkspaceID)
	}))
}

func addWorkspaceResume(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Resume a paused workspace (any call that needs the VM does this by itself). Result: the workspace plus " +
			"restored (true: processes and services came back as they were; false with restore_error: the saved state could not " +
			"be restored and the workspace booted cold from its disk, so processes and services must be started again) and resume_ms. " +
			workspaceFields,
		InputSchema: inputSchema[workspaceRefInput](workspaceRefProps)}
	addTool(s, d, t, handler(func(ctx context.Context, in workspaceRefInput) (*pyro.WorkspaceResumeResult, error) {
		return c.ResumeWorkspace(ctx, in.WorkspaceID)
	}))
}

type workspaceForkInput struct {
	WorkspaceID string `json:"workspace_id"`
	Count       int    `json:"count,omitempty"`
	NamePrefix  string `json:"name_prefix,omitempty"`
}

func addWorkspaceFork(s *mcp.Server, d deps, name string) {
	c := d.c
	lo, hi := rng(1, pyro.MaxForkCount)
	t := &mcp.Tool{Name: name,
		Description: "Make count new workspaces from this workspace's memory and disk at this instant, e.g. to try several fixes in " +
			"parallel from one prepared state; a running source is stopped only while its memory is saved (a fraction of a second) and runs on, its shells and calls included. Each fork has its own workspace_id, " +
			"copy-on-write disk, network and fresh entropy, and keeps the source's running processes and services, baseline " +
			"(workspace_diff shows the source's changes too), history, secrets and labels plus forked_from. Delete forks when done. " +
			"Result: source and forks (workspaces: workspace_id, name, state, labels, ...) and fork_ms.",
		InputSchema: inputSchema[workspaceForkInput](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"count":        {desc: "How many forks.", def: 1, min: lo, max: hi},
			"name_prefix":  {desc: "Optional: name the forks PREFIX-1 ... PREFIX-N."},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in workspaceForkInput) (*pyro.WorkspaceForkResult, error) {
		return c.ForkWorkspace(ctx, pyro.ForkWorkspaceRequest{Workspace: in.WorkspaceID, Count: in.Count, NamePrefix: in.NamePrefix})
	}))
}
