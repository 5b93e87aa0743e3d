package pyro

import (
	"context"
	"strings"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/wsdiff"
)

// FileChange is one changed path in a workspace diff.
type FileChange struct {
	Path   string `json:"path"`   // relative to /workspace
	Status string `json:"status"` // "added", "modified" or "deleted"
	Kind   string `json:"kind"`   // "file", "symlink" or "dir": of the current side; of the baseline when deleted
	// Binary: either side is not text (NUL in the first 8 KiB, or invalid
	// UTF-8) or too large to diff; Summary then says what changed.
	Binary     bool   `json:"binary"`
	Diff       string `json:"diff,omitempty"` // unified diff of a text file
	Summary    string `json:"summary,omitempty"`
	ModeChange string `json:"mode_change,omitempty"` // e.g. "100644 -> 100755"
}

func toFileChange(c wsdiff.Change) FileChange { return FileChange(c) }

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
	changes := mapSlice(res.Changes, toFileChange)
	if changes == nil {
		changes = []FileChange{}
	}
	return &WorkspaceDiff{WorkspaceID: r.ID, Changes: changes, Added: res.Added, Modified: res.Modified, Deleted: res.Deleted, Patch: res.Patch,
		Skipped: res.Skipped.Count, SkippedFiles: mapSlice(res.Skipped.Files, toSkipped)}, nil
}

// ApplyPatchRequest is a patch for ApplyPatch.
type ApplyPatchRequest struct {
	Workspace string `json:"workspace_id"` // id or name
	// Patch is a unified diff (git or diff -u style; paths relative to
	// /workspace, a/ and b/ prefixes allowed). Empty is invalid_argument.
	Patch string `json:"patch"`
}

// ApplyPatch applies a unified diff to /workspace, all or nothing: it is
// checked against the current files on the host first, and if any hunk does
// not apply nothing changes and the error (code patch_failed) names it. The
// new content and the deletions are then written in one step that a crash
// cannot cut in half (after a restart all of the patch is there or none).
func (c *Client) ApplyPatch(ctx context.Context, req ApplyPatchRequest) (*PatchResult, error) {
	ref, patch := req.Workspace, req.Patch
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
	return &WorkspaceSummary{Workspace: w, Changes: mapSlice(s.Changes, toFileChange), Added: s.Added,
		Modified: s.Modified, Deleted: s.Deleted, LastCommands: mapSlice(s.LastCommands, toLogEntry)}, nil
}
