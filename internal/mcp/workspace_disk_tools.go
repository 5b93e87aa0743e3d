package mcp

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
)

const diskRule = "Reads the disk of a STOPPED workspace offline, without booting it (a running one is refused with workspace_running: stop it first, or use the workspace_file_* tools while it runs); the disk is never written. "

const diskPathRule = "Relative to /workspace, or absolute under it; paths that leave /workspace are refused, and symlinks are never followed (one on the way is refused with is_symlink)."

func addWorkspaceDiskList(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: diskRule + "List a directory of it. Result: entries with path (relative to /workspace), type (file, dir, symlink, other), size (0 for directories) and mode, like workspace_file_list.",
		InputSchema: inputSchema[fileListInput](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"path":         {desc: "Directory to list. " + diskPathRule, def: "/workspace"},
			"recursive":    {desc: "List the whole tree instead of one level.", def: false},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in fileListInput) (fileListOutput, error) {
		e, err := c.ListDiskFiles(ctx, pyro.ListFilesRequest{Workspace: in.WorkspaceID, Path: in.Path, Recursive: in.Recursive})
		return fileListOutput{Entries: e}, err
	}))
}

func addWorkspaceDiskRead(s *mcp.Server, d deps, name string) {
	c := d.c
	lo, hi := rng(1, pyro.MaxFileReadMaxBytes)
	t := &mcp.Tool{Name: name,
		Description: diskRule + "Read one regular file of it. Result: content, size, binary (true when the content is not UTF-8 text), like workspace_file_read. Files above max_bytes are refused with too_large; directories and special files with not_a_file.",
		InputSchema: inputSchema[fileReadInput](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"path":         {desc: "File to read. " + diskPathRule, required: true},
			"max_bytes":    {desc: "Refuse files larger than this.", def: pyro.DefaultFileReadMaxBytes, min: lo, max: hi},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in fileReadInput) (*pyro.FileContent, error) {
		return c.ReadDiskFile(ctx, pyro.ReadFileRequest{Workspace: in.WorkspaceID, Path: in.Path, MaxBytes: in.MaxBytes})
	}))
}

type diskExportInput struct {
	WorkspaceID string `json:"workspace_id"`
	OutputPath  string `json:"output_path"`
}

func addWorkspaceDiskExport(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: diskRule + "Write its whole disk (the guest's root filesystem, /workspace included) as a raw ext4 image to a new host path, e.g. for forensics or e2fsck. " +
			d.host.write + " Result: workspace_id, host_path, format (raw), bytes.",
		InputSchema: inputSchema[diskExportInput](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"output_path":  {desc: "Host path of the image to create; its parent must exist and the path itself must not. " + d.host.write, required: true},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in diskExportInput) (*pyro.DiskExportResult, error) {
		return c.ExportDisk(ctx, pyro.ExportDiskRequest{Workspace: in.WorkspaceID, Output: in.OutputPath})
	}))
}
