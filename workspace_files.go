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
type FileEntry struct {
	Path string `json:"path"` // relative to /workspace
	Type string `json:"type"` // file, dir, symlink, other
	Size int64  `json:"size"` // bytes; 0 for directories
	Mode string `json:"mode"` // octal permission bits
}

func toFileEntry(e workspace.FileEntry) FileEntry { return FileEntry(e) }

// FileContent is a file read from a workspace.
type FileContent struct {
	WorkspaceID string `json:"workspace_id"`
	Path        string `json:"path"`
	Size        int    `json:"size"`
	Content     string `json:"content"` // the bytes; when not valid UTF-8, see Binary
	Binary      bool   `json:"binary"`  // content is not valid UTF-8 text
}

// SyncPushRequest names what SyncPush copies where.
type SyncPushRequest struct {
	Workspace string `json:"workspace_id"` // id or name
	// Source is a host directory, a .tar or a .tar.gz/.tgz file.
	Source string `json:"source_path"`
	// Dest is the guest directory it lands in; "" = /workspace. Relative
	// paths are under /workspace.
	Dest string `json:"dest,omitempty"`
}

// SyncPush copies a host directory or archive into the running workspace
// under req.Dest, overwriting files of the same name.
func (c *Client) SyncPush(ctx context.Context, req SyncPushRequest) (*TransferResult, error) {
	ref, dest := req.Workspace, req.Dest
	in, err := c.host.OpenSource(req.Source)
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
		Skipped: len(st.Skipped), SkippedFiles: mapSlice(st.Skipped[:min(len(st.Skipped), 100)], toSkipped)}, nil
}

// ExportWorkspaceRequest names what ExportWorkspace copies where.
type ExportWorkspaceRequest struct {
	Workspace string `json:"workspace_id"` // id or name
	// Path is the workspace file or directory, relative to /workspace or
	// absolute under it.
	Path string `json:"path"`
	// Output is a new host path; its parent must exist and an existing
	// path is never replaced.
	Output string `json:"output_path"`
}

// ExportWorkspace copies a workspace file or directory to a new host path.
func (c *Client) ExportWorkspace(ctx context.Context, req ExportWorkspaceRequest) (*TransferResult, error) {
	ref, path := req.Workspace, req.Path
	out, err := c.host.OpenTarget(req.Output)
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
		Skipped: sk.Count, SkippedFiles: mapSlice(sk.Files, toSkipped)}, nil
}

// ReadFileRequest names one file of a workspace (ReadWorkspaceFile) or of a
// stopped workspace's disk (ReadDiskFile).
type ReadFileRequest struct {
	Workspace string `json:"workspace_id"` // id or name
	Path      string `json:"path"`         // relative to /workspace or absolute under it
	// MaxBytes refuses larger files with code too_large; 0 =
	// DefaultFileReadMaxBytes, at most MaxFileReadMaxBytes.
	MaxBytes int64 `json:"max_bytes,omitempty"`
}

// ReadWorkspaceFile returns one file's content; files above req.MaxBytes
// are refused with code too_large.
func (c *Client) ReadWorkspaceFile(ctx context.Context, req ReadFileRequest) (*FileContent, error) {
	ref, path, maxBytes := req.Workspace, req.Path, req.MaxBytes
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

// WriteFileRequest is one file for WriteWorkspaceFile.
type WriteFileRequest struct {
	Workspace string `json:"workspace_id"` // id or name
	Path      string `json:"path"`         // relative to /workspace or absolute under it
	Content   []byte `json:"content"`      // the whole file; nil or empty writes an empty file
}

// WriteWorkspaceFile creates or replaces one workspace file.
func (c *Client) WriteWorkspaceFile(ctx context.Context, req WriteFileRequest) (*TransferResult, error) {
	ref, path, content := req.Workspace, req.Path, req.Content
	r, err := c.workspaces(ctx).FileWrite(ctx, ref, path, content)
	if err != nil {
		return nil, err
	}
	p, _ := workspace.GuestPath("path", path)
	return &TransferResult{WorkspaceID: r.ID, Path: p, Entries: 1, Bytes: int64(len(content))}, nil
}

// ListFilesRequest names a directory of a workspace (ListWorkspaceFiles) or
// of a stopped workspace's disk (ListDiskFiles).
type ListFilesRequest struct {
	Workspace string `json:"workspace_id"` // id or name
	// Path is the directory, relative to /workspace or absolute under it;
	// "" = /workspace.
	Path string `json:"path,omitempty"`
	// Recursive lists the whole tree below Path; false = its entries only.
	Recursive bool `json:"recursive,omitempty"`
}

// ListWorkspaceFiles lists a workspace directory.
func (c *Client) ListWorkspaceFiles(ctx context.Context, req ListFilesRequest) ([]FileEntry, error) {
	entries, err := c.workspaces(ctx).FileList(ctx, req.Workspace, req.Path, req.Recursive)
	if err != nil {
		return nil, err
	}
	if entries == nil {
		return []FileEntry{}, nil
	}
	return mapSlice(entries, toFileEntry), nil
}
