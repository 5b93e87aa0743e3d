package mcp

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
)

const pathRule = "Relative to /workspace, or absolute under it; paths that leave /workspace (.., symlinks) are refused."

type syncPushInput struct {
	WorkspaceID string `json:"workspace_id"`
	SourcePath  string `json:"source_path"`
	Dest        string `json:"dest,omitempty"`
}

func addWorkspaceSyncPush(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Copy later host-side changes (a host directory, .tar or .tar.gz) into a running workspace without recreating it; files of the same name are overwritten. " +
			d.host.read + " Result: path, host_path, entries, bytes.",
		InputSchema: inputSchema[syncPushInput](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"source_path":  {desc: "Host directory or archive to copy. " + d.host.read, required: true},
			"dest":         {desc: "Guest directory to copy into. " + pathRule, def: "/workspace"},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in syncPushInput) (*pyro.TransferResult, error) {
		return c.SyncPush(ctx, pyro.SyncPushRequest{Workspace: in.WorkspaceID, Source: in.SourcePath, Dest: in.Dest})
	}))
}

type exportInput struct {
	WorkspaceID string `json:"workspace_id"`
	Path        string `json:"path"`
	OutputPath  string `json:"output_path"`
}

func addWorkspaceExport(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Copy one workspace file or directory back to a new path on the host (its parent must exist; nothing is ever replaced). " +
			d.host.write + " Result: host_path (where it went), entries, bytes.",
		InputSchema: inputSchema[exportInput](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"path":         {desc: "Workspace file or directory. " + pathRule, required: true},
			"output_path":  {desc: "Host path to create; it must not exist yet. " + d.host.write, required: true},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in exportInput) (*pyro.TransferResult, error) {
		return c.ExportWorkspace(ctx, pyro.ExportWorkspaceRequest{Workspace: in.WorkspaceID, Path: in.Path, Output: in.OutputPath})
	}))
}

type fileListInput struct {
	WorkspaceID string `json:"workspace_id"`
	Path        string `json:"path,omitempty"`
	Recursive   bool   `json:"recursive,omitempty"`
}

type fileListOutput struct {
	Entries []pyro.FileEntry `json:"entries"`
}

func addWorkspaceFileList(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "List a workspace directory. Result: entries with path (relative to /workspace), type (file, dir, symlink, other), size and mode.",
		InputSchema: inputSchema[fileListInput](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"path":         {desc: "Directory to list. " + pathRule, def: "/workspace"},
			"recursive":    {desc: "List the whole tree instead of one level.", def: false},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in fileListInput) (fileListOutput, error) {
		e, err := c.ListWorkspaceFiles(ctx, pyro.ListFilesRequest{Workspace: in.WorkspaceID, Path: in.Path, Recursive: in.Recursive})
		return fileListOutput{Entries: e}, err
	}))
}

type fileReadInput struct {
	WorkspaceID string `json:"workspace_id"`
	Path        string `json:"path"`
	MaxBytes    int64  `json:"max_bytes,omitempty"`
}

func addWorkspaceFileRead(s *mcp.Server, d deps, name string) {
	c := d.c
	lo, hi := rng(1, pyro.MaxFileReadMaxBytes)
	t := &mcp.Tool{Name: name,
		Description: "Read one workspace file. Result: content, size, binary (true when the content is not UTF-8 text). Files above max_bytes are refused with too_large.",
		InputSchema: inputSchema[fileReadInput](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"path":         {desc: "File to read. " + pathRule, required: true},
			"max_bytes":    {desc: "Refuse files larger than this.", def: pyro.DefaultFileReadMaxBytes, min: lo, max: hi},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in fileReadInput) (*pyro.FileContent, error) {
		return c.ReadWorkspaceFile(ctx, pyro.ReadFileRequest{Workspace: in.WorkspaceID, Path: in.Path, MaxBytes: in.MaxBytes})
	}))
}

type fileWriteInput struct {
	WorkspaceID string `json:"workspace_id"`
	Path        string `json:"path"`
	Text        string `json:"text"`
}

func addWorkspaceFileWrite(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Create or replace one workspace file with the given text (parent directories are created). Prefer workspace_patch_apply for edits to existing files.",
		InputSchema: inputSchema[fileWriteInput](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"path":         {desc: "File to write. " + pathRule, required: true},
			"text":         {desc: "The complete new content.", required: true},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in fileWriteInput) (*pyro.TransferResult, error) {
		return c.WriteWorkspaceFile(ctx, pyro.WriteFileRequest{Workspace: in.WorkspaceID, Path: in.Path, Content: []byte(in.Text)})
	}))
}
