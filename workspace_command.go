package pyro

import (
	"context"
	"time"

	"github.com/pyrovm/pyro/internal/command"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/guestexec"
	"github.com/pyrovm/pyro/internal/supervisor"
)

// Command states.
const (
	CommandRunning  = command.StateRunning
	CommandExited   = command.StateExited   // ended by itself: see ExitCode
	CommandTimedOut = command.StateTimedOut // killed at its timeout (exit code 124)
	CommandKilled   = command.StateKilled   // ended by KillCommand (exit code 137)
	CommandFailed   = command.StateFailed   // pyro could not run it to its end: see Error
)

// Bounds of commands kept by a workspace. Each stream of a command keeps
// its newest CommandLogBytes; a read from a cursor before them reports the
// bytes it missed (dropped_bytes). Only the newest CommandsKept finished
// commands are kept; at most MaxBackgroundCommands run at once.
const (
	CommandLogBytes       = command.LogBytes
	CommandsKept          = command.KeepFinished
	MaxBackgroundCommands = command.MaxBackground
	DefaultWaitSeconds    = 30
	MaxWaitSeconds        = int(command.MaxWait / time.Second)
)

// WorkspaceCommand is a command a workspace holds: a background command, or a
// recent foreground one (whose whole output can be read again by cursor).
// Commands live as long as the workspace's VM: stop, reset and delete end
// them.
type WorkspaceCommand struct {
	WorkspaceID string `json:"workspace_id"`
	CommandID   string `json:"command_id"`
	Command     string `json:"command"`
	Background  bool   `json:"background"`
	State       string `json:"state"` // running, exited, timed_out, killed or failed
	// ExitCode is set once it ended, as exec reports it: 124 after its
	// timeout, 128+N when signal N ended it.
	ExitCode    *int       `json:"exit_code,omitempty"`
	Signal      string     `json:"signal,omitempty"`
	Error       string     `json:"error,omitempty"` // why it failed
	StartedAt   time.Time  `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	DurationMs  int64      `json:"duration_ms"`
	StdoutBytes int64      `json:"stdout_bytes"` // all stdout so far: the cursor of its end
	StderrBytes int64      `json:"stderr_bytes"`
}

func toCommand(wsID string, i *command.Info) *WorkspaceCommand {
	c := &WorkspaceCommand{
		WorkspaceID: wsID, CommandID: i.CommandID, Command: i.Command, Background: i.Background, State: i.State,
		Signal: i.Signal, Error: i.Error, StartedAt: i.StartedAt, EndedAt: i.EndedAt, DurationMs: i.DurationMs,
		StdoutBytes: i.StdoutBytes, StderrBytes: i.StderrBytes,
	}
	if i.ExitCode != nil {
		code := guestexec.Outcome(*i.ExitCode, i.Signal, i.State == command.StateTimedOut)
		c.ExitCode = &code
	}
	return c
}

func toCommands(wsID string, l []command.Info) []WorkspaceCommand {
	out := make([]WorkspaceCommand, 0, len(l))
	for i := range l {
		out = append(out, *toCommand(wsID, &l[i]))
	}
	return out
}

// CommandRequest names one command of a workspace.
type CommandRequest struct {
	Workspace string `json:"workspace_id"` // id or name
	CommandID string `json:"command_id"`
}

// CommandStatus describes one command.
func (c *Client) CommandStatus(ctx context.Context, req CommandRequest) (*WorkspaceCommand, error) {
	r, info, err := c.workspaces(ctx).Command(ctx, req.Workspace, req.CommandID)
	if err != nil {
		return nil, err
	}
	return toCommand(r.ID, info), nil
}

// ListCommands lists the commands a running workspace holds, oldest first.
func (c *Client) ListCommands(ctx context.Context, ref string) ([]WorkspaceCommand, error) {
	r, l, err := c.workspaces(ctx).Commands(ctx, ref)
	if err != nil {
		return nil, err
	}
	return toCommands(r.ID, l), nil
}

// CommandLogsRequest reads a command's output: stdout from Cursor, stderr
// from StderrCursor (0 = the start; pass the Next cursors of the last read
// to follow), at most MaxBytes of each (default 64 KiB, at most 1 MiB).
type CommandLogsRequest struct {
	Workspace    string `json:"workspace_id"`
	CommandID    string `json:"command_id"`
	Cursor       int64  `json:"cursor,omitempty"`
	StderrCursor int64  `json:"stderr_cursor,omitempty"`
	MaxBytes     int    `json:"max_bytes,omitempty"`
}

// CommandLogs is one read of a command's output.
type CommandLogs struct {
	WorkspaceCommand
	Stdout             string `json:"stdout"`
	Stderr             string `json:"stderr"`
	StdoutFrom         int64  `json:"stdout_from"`          // where Stdout starts (later than asked when older output was dropped)
	NextCursor         int64  `json:"next_cursor"`          // pass as cursor to read on
	StdoutDroppedBytes int64  `json:"stdout_dropped_bytes"` // output lost between the asked cursor and StdoutFrom
	StderrFrom         int64  `json:"stderr_from"`
	NextStderrCursor   int64  `json:"next_stderr_cursor"` // pass as stderr_cursor to read on
	StderrDroppedBytes int64  `json:"stderr_dropped_bytes"`
	More               bool   `json:"more"` // more output is already waiting past the next cursors
}

// CommandLogs reads a command's output by cursor; it also works while the
// command runs.
func (c *Client) CommandLogs(ctx context.Context, req CommandLogsRequest) (*CommandLogs, error) {
	r, l, err := c.workspaces(ctx).CommandLogs(ctx, req.Workspace, req.CommandID, supervisor.CommandLogsRequest{
		StdoutCursor: req.Cursor, StderrCursor: req.StderrCursor, MaxBytes: req.MaxBytes,
	})
	if err != nil {
		return nil, err
	}
	return &CommandLogs{
		WorkspaceCommand: *toCommand(r.ID, &l.Command), Stdout: string(l.Stdout.Data), Stderr: string(l.Stderr.Data),
		StdoutFrom: l.Stdout.Cursor, NextCursor: l.Stdout.Next, StdoutDroppedBytes: l.Stdout.Dropped,
		StderrFrom: l.Stderr.Cursor, NextStderrCursor: l.Stderr.Next, StderrDroppedBytes: l.Stderr.Dropped,
		More: l.Stdout.More || l.Stderr.More,
	}, nil
}

// WaitCommandRequest waits until the command ends, at most TimeoutSeconds
// (default DefaultWaitSeconds, at most MaxWaitSeconds); then it is still
// running, which is not an error.
type WaitCommandRequest struct {
	Workspace      string `json:"workspace_id"`
	CommandID      string `json:"command_id"`
	TimeoutSeconds int    `json:"timeout_seconds,omitempty"`
}

// WaitCommand waits for a command to end and describes it.
func (c *Client) WaitCommand(ctx context.Context, req WaitCommandRequest) (*WorkspaceCommand, error) {
	if req.TimeoutSeconds == 0 {
		req.TimeoutSeconds = DefaultWaitSeconds
	}
	if req.TimeoutSeconds < 0 || req.TimeoutSeconds > MaxWaitSeconds {
		return nil, errdefs.InvalidArgument("timeout_seconds", "%d is out of range [1, %d]", req.TimeoutSeconds, MaxWaitSeconds)
	}
	r, info, err := c.workspaces(ctx).WaitCommand(ctx, req.Workspace, req.CommandID, supervisor.CommandWaitRequest{
		TimeoutMs: int64(req.TimeoutSeconds) * 1000,
	})
	if err != nil {
		return nil, err
	}
	return toCommand(r.ID, info), nil
}

// KillCommand kills a running command's whole process group and waits for
// it to end; an ended command is reported as it is.
func (c *Client) KillCommand(ctx context.Context, req CommandRequest) (*WorkspaceCommand, error) {
	r, info, err := c.workspaces(ctx).KillCommand(ctx, req.Workspace, req.CommandID)
	if err != nil {
		return nil, err
	}
	return toCommand(r.ID, info), nil
}
