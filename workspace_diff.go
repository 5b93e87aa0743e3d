package pyro

import (
	"context"
	"strings"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/wsdiff"
)

// FileChange is one changed path in a workspace diff.
type FileChange = wsdiff.Change

// WorkspaceDiff is /workspace compared with its create-time baseline.
type WorkspaceDiff struct {
	WorkspaceID string       `json:"workspace_id"`
	Changes     []FileChange `json:"changes"`
	Added       int          `json:"added"`
	Modified    int          `json:"modified"`
	Deleted     int          `json:"deleted"`
	Patch       string       `json:"patch"` // all text changes as one unified diff against the baseline
	// Special files (fifos, sockets, device nodes) in /workspace that no
	// archive carries, so not compared; the first 100 of them.
	Skipped      int           `json:"skipped,omitempty"`
	SkippedFiles []SkippedFile `json:"skipped_files,omitempty"`
}

// PatchResult says what a patch changed.
type PatchResult struct {
	WorkspaceID string   `json:"workspace_id"`
	Changed     []string `json:"changed"` // paths relative to /workspace
}

// WorkspaceSummary is a workspace at a glance.
type WorkspaceSummary struct {
	Workspace
	Changes      []FileChange        `json:"changes"` // since the baseline (running workspaces)
	Added        int                 `json:"added"`
	Modified     int                 `json:"modified"`
	Deleted      int                 `json:"deleted"`
	LastCommands []WorkspaceLogEntry `json:"last_commands"`
}

// DiffWorkspace compares /workspace with the create-time baseline: added,
// modified and deleted files, unified text for text files and a summary line
// for binary ones.
func (c *Client) DiffWorkspace(ctx context.Context, ref string) (*WorkspaceDiff, error) {
	r, res, err := c.workspaces(ctx).Diff(ctx, ref)
	if err != nil {
		return nil, err
	}
	changes := res.Changes
	if changes == nil {
		changes = []FileChange{}
	}
	return &WorkspaceDiff{WorkspaceID: r.ID, Changes: changes, Added: res.Added, Modified: res.Modified, Deleted: res.Deleted, Patch: res.Patch,
		Skipped: res.Skipped.Count, SkippedFiles: res.Skipped.Files}, nil
}

// ApplyPatch applies a unified diff to /workspace, all or nothing: it is
// checked against the current files on the host first, and if any hunk does
// not apply nothing changes and the error (code patch_failed) names it.
func (c *Client) ApplyPatch(ctx context.Context, ref, patch string) (*PatchResult, error) {
	if strings.TrimSpace(patch) == "" {
		return nil, errdefs.InvalidArgument("patch", "is empty; give a unified diff")
	}
	r, res, err := c.workspaces(ctx).PatchApply(ctx, ref, patch)
	if err != nil {
		return nil, err
	}
	return &PatchResult{WorkspaceID: r.ID, Changed: res.Changed}, nil
}

// SummarizeWorkspace reports state, sizes, changed files since the baseline
// and the last commands.
func (c *Client) SummarizeWorkspace(ctx context.Context, ref string) (*WorkspaceSummary, error) {
	r, s, err := c.workspaces(ctx).Summarize(ctx, ref)
	if err != nil {
		return nil, err
	}
	w := toWorkspace(r, nil)
	c.addCommands(ctx, &w)
	return &WorkspaceSummary{Workspace: w, Changes: s.Changes, Added: s.Added,
		Modified: s.Modified, Deleted: s.Deleted, LastCommands: s.LastCommands}, nil
}
