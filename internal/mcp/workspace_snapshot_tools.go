package mcp

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
)

// namedInput names one thing of a workspace: a snapshot or a service.
type namedInput struct {
	WorkspaceID string `json:"workspace_id"`
	Name        string `json:"name"`
}

const snapshotFields = "Result: workspace_id, name, created_at, entries (files, dirs and symlinks), bytes (file content)."

var snapshotNameProp = prop{desc: "Snapshot name: 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit; \"baseline\" is reserved.", required: true}

func addSnapshotCreate(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Save the running workspace's /workspace under a name, before a risky change; workspace_reset with " +
			"that snapshot returns to it later. Only files are saved, not processes, shells or services. " + snapshotFields,
		InputSchema: inputSchema[namedInput](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"name":         snapshotNameProp,
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in namedInput) (*pyro.WorkspaceSnapshot, error) {
		return c.CreateSnapshot(ctx, pyro.SnapshotRequest{Workspace: in.WorkspaceID, Name: in.Name})
	}))
}

func addSnapshotDelete(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Delete a workspace snapshot for good (the baseline cannot be deleted). Result: the deleted snapshot's " +
			"workspace_id, name, created_at, entries, bytes.",
		InputSchema: inputSchema[namedInput](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"name":         {desc: "Name of the snapshot to delete; see snapshot_list.", required: true},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in namedInput) (*pyro.WorkspaceSnapshot, error) {
		return c.DeleteSnapshot(ctx, pyro.SnapshotRequest{Workspace: in.WorkspaceID, Name: in.Name})
	}))
}

type snapshotListOutput struct {
	Snapshots []pyro.WorkspaceSnapshot `json:"snapshots"`
}

func addSnapshotList(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "List a workspace's snapshots, oldest first: name, created_at, entries, bytes.",
		InputSchema: inputSchema[workspaceRefInput](workspaceRefProps)}
	addTool(s, d, t, handler(func(ctx context.Context, in workspaceRefInput) (snapshotListOutput, error) {
		ss, err := c.ListSnapshots(ctx, in.WorkspaceID)
		return snapshotListOutput{Snapshots: ss}, err
	}))
}

type workspaceResetInput struct {
	WorkspaceID string `json:"workspace_id"`
	Snapshot    string `json:"snapshot,omitempty"`
}

func addWorkspaceReset(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Rebuild the workspace's sandbox: a fresh VM whose /workspace holds the create-time baseline, or a " +
			"snapshot. Use it to start over after a change went wrong. Shells, services and the command history are gone; " +
			"id, name, labels, baseline and snapshots stay, and workspace_diff still compares with the baseline. " +
			"If it fails, the workspace is left stopped as it was before. " + workspaceFields + " reset_from says which source was used.",
		InputSchema: inputSchema[workspaceResetInput](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"snapshot":     {desc: "\"baseline\" for the create-time content (the default), or the name of a snapshot made with snapshot_create (workspace-full profile).", def: "baseline"},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in workspaceResetInput) (*pyro.Workspace, error) {
		return c.ResetWorkspace(ctx, pyro.ResetWorkspaceRequest{Workspace: in.WorkspaceID, Snapshot: in.Snapshot})
	}))
}
