package pyro

import (
	"context"
	"unicode/utf8"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/workspace"
)

// DefaultFileReadMaxBytes bounds workspace file reads unless told otherwise.
const DefaultFileReadMaxBytes = 1 << 20

// MaxFileReadMaxBytes is the largest max_bytes a file read accepts.
const MaxFileReadMaxBytes = 64 << 20

// TransferResult reports a sync push or an export.
type TransferResult struct {
	WorkspaceID string `json:"workspace_id"`
	Path        string `json:"path"`              // guest path
	HostPath    string `json:"host_path"`         // source (push) or output (export)
	Entries     int    `json:"entries"`           // files, dirs and symlinks moved
	Bytes       int64  `json:"bytes"`             // file content bytes moved
	Skipped     int    `json:"skipped,omitempty"` // special files left out (push: unreadable host files too)
	// The first 100 files left out, and why.
	SkippedFiles []SkippedFile `json:"skipped_files,omitempty"`
}

// FileEntry is one entry of a workspace directory listing.
type FileEntry = workspace.FileEntry

// FileContent is a file read from a workspace.
type FileContent struct {
	WorkspaceID string `json:"workspace_id"`
	Path        string `json:"path"`
	Size        int    `json:"size"`
	Content     string `json:"content"` // the bytes; when not valid UTF-8, see Binary
	Binary      bool   `json:"binary"`  // content is not valid UTF-8 text
}

// SyncPush copies a host directory or archive into the running workspace
// under dest (default /workspace), overwriting files of the same name.
func (c *Client) SyncPush(ctx context.Context, ref, src, dest string) (*TransferResult, error) {
	in, err := c.host.OpenSource(src)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	r, st, err := c.workspaces(ctx).SyncPush(ctx, ref, in, dest)
	if err != nil {
		return nil, err
	}
	d, _ := workspace.GuestPath("dest", dest)
	return &TransferResult{WorkspaceID: r.ID, Path: d, HostPath: in.Path, Entries: st.Entries, Bytes: st.Bytes,
		Skipped: len(st.Skipped), SkippedFiles: st.Skipped[:min(len(st.Skipped), 100)]}, nil
}

// ExportWorkspace copies a workspace file or directory to a new host path
// (its parent must exist; an existing path is never replaced).
func (c *Client) ExportWorkspace(ctx context.Context, ref, path, output string) (*TransferResult, error) {
	out, err := c.host.OpenTarget(output)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	r, st, sk, err := c.workspaces(ctx).Export(ctx, ref, path, out)
	if err != nil {
		return nil, err
	}
	p, _ := workspace.GuestPath("path", path)
	return &TransferResult{WorkspaceID: r.ID, Path: p, HostPath: out.Path, Entries: st.Entries, Bytes: st.Bytes,
		Skipped: sk.Count, SkippedFiles: sk.Files}, nil
}

// ReadWorkspaceFile returns one file's content; files above maxBytes (0 =
// DefaultFileReadMaxBytes) are refused with code too_large.
func (c *Client) ReadWorkspaceFile(ctx context.Context, ref, path string, maxBytes int64) (*FileContent, error) {
	if maxBytes == 0 {
		maxBytes = DefaultFileReadMaxBytes
	}
	if maxBytes < 1 || maxBytes > MaxFileReadMaxBytes {
		return nil, errdefs.InvalidArgument("max_bytes", "%d is out of range [1, %d]", maxBytes, MaxFileReadMaxBytes)
	}
	b, err := c.workspaces(ctx).FileRead(ctx, ref, path, maxBytes)
	if err != nil {
		return nil, err
	}
	r, err := c.workspaces(ctx).Resolve(ref)
	if err != nil {
		return nil, err
	}
	p, _ := workspace.GuestPath("path", path)
	return &FileContent{WorkspaceID: r.ID, Path: p, Size: len(b), Content: string(b), Binary: !utf8.Valid(b)}, nil
}

// WriteWorkspaceFile creates or replaces one workspace file.
func (c *Client) WriteWorkspaceFile(ctx context.Context, ref, path string, content []byte) (*TransferResult, error) {
	r, err := c.workspaces(ctx).FileWrite(ctx, ref, path, content)
	if err != nil {
		return nil, err
	}
	p, _ := workspace.GuestPath("path", path)
	return &TransferResult{WorkspaceID: r.ID, Path: p, Entries: 1, Bytes: int64(len(content))}, nil
}

// ListWorkspaceFiles lists a workspace directory (default /workspace).
func (c *Client) ListWorkspaceFiles(ctx context.Context, ref, path string, recursive bool) ([]FileEntry, error) {
	entries, err := c.workspaces(ctx).FileList(ctx, ref, path, recursive)
	if entries == nil && err == nil {
		entries = []FileEntry{}
	}
	return entries, err
}
