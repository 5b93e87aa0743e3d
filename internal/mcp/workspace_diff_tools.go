package mcp

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
)

func addWorkspaceDiff(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Compare /workspace with its immutable create-time baseline. Result: changes (path, status added/modified/deleted, kind, binary, diff: unified text for text files, summary for binary ones), counts, and patch (all text changes as one unified diff).",
		InputSchema: inputSchema[workspaceRefInput](workspaceRefProps)}
	addTool(s, d, t, handler(func(ctx context.Context, in workspaceRefInput) (*pyro.WorkspaceDiff, error) {
		return c.DiffWorkspace(ctx, in.WorkspaceID)
	}))
}

type patchInput struct {
	WorkspaceID string `json:"workspace_id"`
	Patch       string `json:"patch"`
}

func addWorkspacePatchApply(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Apply a unified diff (git diff or diff -u with a/ b/ prefixes; paths relative to /workspace) to the workspace, all or nothing: if any hunk does not apply, nothing changes and the error (patch_failed) names the file and hunk; new content and deleted files are written in one crash-safe step. Result: changed (the paths written or deleted).",
		InputSchema: inputSchema[patchInput](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"patch":        {desc: "The unified diff text.", required: true},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in patchInput) (*pyro.PatchResult, error) {
		return c.ApplyPatch(ctx, pyro.ApplyPatchRequest{Workspace: in.WorkspaceID, Patch: in.Patch})
	}))
}

func addWorkspaceSummary(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "A workspace at a glance: state, sizes, the files changed since the baseline (running workspaces) and the last commands with their exit codes.",
		InputSchema: inputSchema[workspaceRefInput](workspaceRefProps)}
	addTool(s, d, t, handler(func(ctx context.Context, in workspaceRefInput) (*pyro.WorkspaceSummary, error) {
		return c.SummarizeWorkspace(ctx, in.WorkspaceID)
	}))
}
