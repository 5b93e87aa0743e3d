package pyro

import (
	"context"
	"time"

	"github.com/pyrovm/pyro/internal/shell"
	"github.com/pyrovm/pyro/internal/supervisor"
)

// Shell states.
const (
	ShellRunning = shell.StateRunning // the program runs; input is accepted
	ShellExited  = shell.StateExited  // the program ended on its own (see ExitCode)
	ShellClosed  = shell.StateClosed  // closed by the caller, or its VM went away
)

// Shell is an interactive PTY shell inside a workspace. It lives as long as
// the workspace's VM: stop, delete and reset end it.
type Shell struct {
	WorkspaceID string     `json:"workspace_id"`
	ShellID     string     `json:"shell_id"`
	State       string     `json:"state"`
	Cwd         string     `json:"cwd"`
	Cols        int        `json:"cols"`
	Rows        int        `json:"rows"`
	ExitCode    *int       `json:"exit_code,omitempty"`
	Signal      string     `json:"signal,omitempty"`
	StartedAt   time.Time  `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	OutputBytes int64      `json:"output_bytes"` // all output so far: the cursor of its end
}

func toShell(wsID string, i *shell.Info) *Shell {
	return &Shell{
		WorkspaceID: wsID, ShellID: i.ShellID, State: i.State, Cwd: i.Cwd, Cols: i.Cols, Rows: i.Rows,
		ExitCode: i.ExitCode, Signal: i.Signal, StartedAt: i.StartedAt, EndedAt: i.EndedAt, OutputBytes: i.OutputBytes,
	}
}

// OpenShellRequest opens a shell. Cwd is relative to /workspace (default);
// the size defaults to 120x30.
type OpenShellRequest struct {
	Workspace string `json:"workspace_id"`
	Cwd       string `json:"cwd,omitempty"`
	Cols      int    `json:"cols,omitempty"`
	Rows      int    `json:"rows,omitempty"`
	// SecretEnv sets secrets as environment variables of the shell: secret
	// name -> variable name ("" = the secret's name).
	SecretEnv map[string]string `json:"secret_env,omitempty"`
}

// OpenShell starts a login shell (bash where the image has it) on a new PTY.
func (c *Client) OpenShell(ctx context.Context, req OpenShellRequest) (*Shell, error) {
	r, info, err := c.workspaces(ctx).OpenShell(ctx, req.Workspace, supervisor.ShellOpenRequest{
		Cwd: req.Cwd, Cols: req.Cols, Rows: req.Rows,
	}, req.SecretEnv)
	if err != nil {
		return nil, err
	}
	return toShell(r.ID, info), nil
}

// ReadShellRequest reads output from Cursor (0 = the beginning; pass the last
// NextCursor to follow). Plain renders what a person would see on the
// terminal. WaitForIdleMs first waits until the output has been quiet that
// long (at most 30 s in all).
type ReadShellRequest struct {
	Workspace     string `json:"workspace_id"`
	ShellID       string `json:"shell_id"`
	Cursor        int64  `json:"cursor,omitempty"`
	MaxChars      int    `json:"max_chars,omitempty"`
	Plain         bool   `json:"plain,omitempty"`
	WaitForIdleMs int64  `json:"wait_for_idle_ms,omitempty"`
}

// ShellOutput is one read of a shell.
type ShellOutput struct {
	Shell
	Output       string `json:"output"`
	Cursor       int64  `json:"cursor"`        // where Output starts (later than asked when older output was dropped)
	NextCursor   int64  `json:"next_cursor"`   // pass this to the next read
	DroppedBytes int64  `json:"dropped_bytes"` // output lost between the requested cursor and Cursor
	More         bool   `json:"more"`          // more output is already waiting past NextCursor
}

// ReadShell reads a shell's output.
func (c *Client) ReadShell(ctx context.Context, req ReadShellRequest) (*ShellOutput, error) {
	r, res, err := c.workspaces(ctx).ReadShell(ctx, req.Workspace, req.ShellID, supervisor.ShellReadRequest{
		Cursor: req.Cursor, MaxChars: req.MaxChars, Plain: req.Plain, WaitForIdleMs: req.WaitForIdleMs,
	})
	if err != nil {
		return nil, err
	}
	return &ShellOutput{
		Shell: *toShell(r.ID, &res.Info), Output: res.Output, Cursor: res.Cursor, NextCursor: res.NextCursor,
		DroppedBytes: res.DroppedBytes, More: res.More,
	}, nil
}

// WriteShellRequest types Input into the shell, followed by a newline unless
// NoNewline is set.
type WriteShellRequest struct {
	Workspace string `json:"workspace_id"`
	ShellID   string `json:"shell_id"`
	Input     string `json:"input"`
	NoNewline bool   `json:"no_newline,omitempty"`
}

// WriteShell sends input to a running shell.
func (c *Client) WriteShell(ctx context.Context, req WriteShellRequest) (*Shell, error) {
	in := req.Input
	if !req.NoNewline {
		in += "\n"
	}
	return c.shellInput(ctx, req.Workspace, req.ShellID, supervisor.ShellInputRequest{Input: in})
}

// ShellRequest names one shell of a workspace.
type ShellRequest struct {
	Workspace string `json:"workspace_id"` // id or name
	ShellID   string `json:"shell_id"`
}

// SignalShellRequest is a signal for SignalShell.
type SignalShellRequest struct {
	Workspace string `json:"workspace_id"` // id or name
	ShellID   string `json:"shell_id"`
	// Signal is INT, TERM, HUP or KILL; "" = INT.
	Signal string `json:"signal,omitempty"`
}

// SignalShell sends a signal to the shell's foreground job.
func (c *Client) SignalShell(ctx context.Context, req SignalShellRequest) (*Shell, error) {
	signal := req.Signal
	if signal == "" {
		signal = "INT"
	}
	return c.shellInput(ctx, req.Workspace, req.ShellID, supervisor.ShellInputRequest{Signal: signal})
}

// ResizeShellRequest is a terminal size for ResizeShell.
type ResizeShellRequest struct {
	Workspace string `json:"workspace_id"` // id or name
	ShellID   string `json:"shell_id"`
	// Cols (10..500) and Rows (2..200) are both required: a zero is
	// invalid_argument, as for any size out of range.
	Cols int `json:"cols"`
	Rows int `json:"rows"`
}

// ResizeShell changes the shell's terminal size.
func (c *Client) ResizeShell(ctx context.Context, req ResizeShellRequest) (*Shell, error) {
	// Checked here too: a zero size would otherwise reach the supervisor as
	// an empty write and do nothing.
	if err := shell.CheckSize(req.Cols, req.Rows); err != nil {
		return nil, err
	}
	return c.shellInput(ctx, req.Workspace, req.ShellID, supervisor.ShellInputRequest{Cols: req.Cols, Rows: req.Rows})
}

func (c *Client) shellInput(ctx context.Context, ref, shellID string, req supervisor.ShellInputRequest) (*Shell, error) {
	r, info, err := c.workspaces(ctx).ShellInput(ctx, ref, shellID, req)
	if err != nil {
		return nil, err
	}
	return toShell(r.ID, info), nil
}

// CloseShell hangs the shell up and ends its programs. Its output stays
// readable until the workspace stops.
func (c *Client) CloseShell(ctx context.Context, req ShellRequest) (*Shell, error) {
	r, info, err := c.workspaces(ctx).CloseShell(ctx, req.Workspace, req.ShellID)
	if err != nil {
		return nil, err
	}
	return toShell(r.ID, info), nil
}
