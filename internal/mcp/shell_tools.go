package mcp

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
)

var shellRefProps = map[string]prop{
	"workspace_id": workspaceRefProps["workspace_id"],
	"shell_id":     {desc: "Shell id from shell_open.", required: true},
}

const shellFields = "Result: shell_id, state (running, exited: its program ended, see exit_code; closed), cwd, cols, rows, output_bytes (the cursor of the output's end)."

func addShellOpen(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Open an interactive shell (bash -l on a PTY) in the workspace. It keeps its state (cwd, variables, " +
			"running programs such as a REPL) between calls until shell_close, workspace stop or delete. Type into it with " +
			"shell_write and follow its output with shell_read. To give the shell a secret (a token, a key), name it in secret_env; " +
			"never type secret values into the shell. Secret values show as [REDACTED] in its output. " + shellFields,
		InputSchema: inputSchema[pyro.OpenShellRequest](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"cwd":          {desc: "Starting directory, relative to /workspace or absolute under it.", def: "/workspace"},
			"cols":         {desc: "Terminal width.", def: 120, min: ptr(10.0), max: ptr(500.0)},
			"rows":         {desc: "Terminal height.", def: 30, min: ptr(2.0), max: ptr(200.0)},
			"secret_env":   secretEnvProp,
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in pyro.OpenShellRequest) (*pyro.Shell, error) {
		return c.OpenShell(ctx, in)
	}))
}

func addShellRead(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Read a shell's output from a cursor. Pass next_cursor from the previous read to get only what is new; " +
			"nothing is lost between reads (if very old output was dropped, dropped_bytes says how much). " +
			"Use plain=true to get the text as a person would see it (escape sequences removed, full-screen programs as their screen), " +
			"and wait_for_idle_ms to first wait until the program has been quiet that long (e.g. 500 after shell_write). " +
			"Result: output, cursor, next_cursor, dropped_bytes, more (more output is waiting), and the shell's state and exit_code.",
		InputSchema: inputSchema[pyro.ReadShellRequest](map[string]prop{
			"workspace_id":     workspaceRefProps["workspace_id"],
			"shell_id":         shellRefProps["shell_id"],
			"cursor":           {desc: "Byte offset to read from: 0 for the start, else the last next_cursor.", def: 0, min: ptr(0.0)},
			"max_chars":        {desc: "At most this many characters of raw output.", def: 65536, min: ptr(1.0), max: ptr(1048576.0)},
			"plain":            {desc: "Render the terminal: no ANSI sequences, carriage returns and backspaces applied.", def: false},
			"wait_for_idle_ms": {desc: "First wait until no output came for this long (or the shell ended; 30 s at most).", def: 0, min: ptr(0.0), max: ptr(30000.0)},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in pyro.ReadShellRequest) (*pyro.ShellOutput, error) {
		return c.ReadShell(ctx, in)
	}))
}

func addShellWrite(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Type input into a running shell, followed by Enter unless no_newline is true. Then use shell_read " +
			"(with wait_for_idle_ms) to see the result. " + shellFields,
		InputSchema: inputSchema[pyro.WriteShellRequest](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"shell_id":     shellRefProps["shell_id"],
			"input":        {desc: "Text to type, e.g. a command line. Control characters are sent as is (\\u0003 is Ctrl-C).", required: true},
			"no_newline":   {desc: "Do not press Enter after the input.", def: false},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in pyro.WriteShellRequest) (*pyro.Shell, error) {
		return c.WriteShell(ctx, in)
	}))
}

type shellSignalInput struct {
	WorkspaceID string `json:"workspace_id"`
	ShellID     string `json:"shell_id"`
	Signal      string `json:"signal,omitempty"`
}

func addShellSignal(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Send a signal to the shell's foreground program (INT is Ctrl-C). " + shellFields,
		InputSchema: inputSchema[shellSignalInput](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"shell_id":     shellRefProps["shell_id"],
			"signal":       {desc: "Signal to send.", def: "INT", enum: []any{"INT", "TERM", "HUP", "KILL"}},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in shellSignalInput) (*pyro.Shell, error) {
		return c.SignalShell(ctx, pyro.SignalShellRequest{Workspace: in.WorkspaceID, ShellID: in.ShellID, Signal: in.Signal})
	}))
}

type shellResizeInput struct {
	WorkspaceID string `json:"workspace_id"`
	ShellID     string `json:"shell_id"`
	Cols        int    `json:"cols"`
	Rows        int    `json:"rows"`
}

func addShellResize(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Change a shell's terminal size; its program gets SIGWINCH and full-screen programs redraw. " + shellFields,
		InputSchema: inputSchema[shellResizeInput](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"shell_id":     shellRefProps["shell_id"],
			"cols":         {desc: "Terminal width.", required: true, min: ptr(10.0), max: ptr(500.0)},
			"rows":         {desc: "Terminal height.", required: true, min: ptr(2.0), max: ptr(200.0)},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in shellResizeInput) (*pyro.Shell, error) {
		return c.ResizeShell(ctx, pyro.ResizeShellRequest{Workspace: in.WorkspaceID, ShellID: in.ShellID, Cols: in.Cols, Rows: in.Rows})
	}))
}

type shellRefInput struct {
	WorkspaceID string `json:"workspace_id"`
	ShellID     string `json:"shell_id"`
}

func addShellClose(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Close a shell: hang it up and end its programs. " + shellFields,
		InputSchema: inputSchema[shellRefInput](shellRefProps)}
	addTool(s, d, t, handler(func(ctx context.Context, in shellRefInput) (*pyro.Shell, error) {
		return c.CloseShell(ctx, pyro.ShellRequest{Workspace: in.WorkspaceID, ShellID: in.ShellID})
	}))
}

func ptr[T any](v T) *T { return &v }
