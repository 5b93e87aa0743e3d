package pyro

import (
	"context"
	"unicode/utf8"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/workspace"
)

// The disk tools read a stopped workspace's disk offline (raw ext4, through
// debugfs), without booting it: a running workspace is refused with code
// workspace_running. They hold the workspace's lock for their duration and
// never write to its disk. Symlinks are listed but never followed.

// DiskExportResult reports a disk export.
type DiskExportResult struct {
	WorkspaceID string `json:"workspace_id"`
	HostPath    string `json:"host_path"` // the raw image created
	Format      string `json:"format"`    // always "raw" (an ext4 filesystem)
	Bytes       int64  `json:"bytes"`     // the image's (apparent) size; it is sparse
}

// ListDiskFiles lists a directory of a stopped workspace's disk (default
// /workspace), in the shape of ListWorkspaceFiles; directories have size 0.
func (c *Client) ListDiskFiles(ctx context.Context, req ListFilesRequest) ([]FileEntry, error) {
	_, entries, err := c.workspaces(ctx).DiskList(ctx, req.Workspace, req.Path, req.Recursive)
	if err != nil {
		return nil, err
	}
	return mapSlice(entries, toFileEntry), nil
}

// ReadDiskFile returns one regular file of a stopped workspace's disk, in
// the shape of ReadWorkspaceFile; files above req.MaxBytes are refused with
// code too_large.
func (c *Client) ReadDiskFile(ctx context.Context, req ReadFileRequest) (*FileContent, error) {
	ref, path, maxBytes := req.Workspace, req.Path, req.MaxBytes
	if maxBytes == 0 {
		maxBytes = DefaultFileReadMaxBytes
	}
	if maxBytes < 1 || maxBytes > MaxFileReadMaxBytes {
		return nil, errdefs.InvalidArgument("max_bytes", "%d is out of range [1, %d]", maxBytes, MaxFileReadMaxBytes)
	}
	r, b, err := c.workspaces(ctx).DiskRead(ctx, ref, path, maxBytes)
	if err != nil {
		return nil, err
	}
	p, _ := workspace.GuestPath("path", path)
	return &FileContent{WorkspaceID: r.ID, Path: p, Size: len(b), Content: string(b), Binary: !utf8.Valid(b)}, nil
}

// ExportDiskRequest names the stopped workspace ExportDisk writes out, and
// where.
type ExportDiskRequest struct {
	Workspace string `json:"workspace_id"` // id or name
	// Output is a new host path; its parent must exist and an existing
	// path is refused.
	Output string `json:"output_path"`
}

// ExportDisk writes a stopped workspace's whole disk as a raw ext4 image to
// a new host path.
func (c *Client) ExportDisk(ctx context.Context, req ExportDiskRequest) (*DiskExportResult, error) {
	ref := req.Workspace
	out, err := c.host.OpenTarget(req.Output)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	r, size, err := c.workspaces(ctx).DiskExport(ctx, ref, out)
	if err != nil {
		return nil, err
	}
	return &DiskExportResult{WorkspaceID: r.ID, HostPath: out.Path, Format: "raw", Bytes: size}, nil
}
