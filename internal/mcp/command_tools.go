package mcp

import (
	"context"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
)

var commandRefProps = map[string]prop{
	"workspace_id": workspaceRefProps["workspace_id"],
	"command_id":   {desc: "Command id: from workspace_exec (background=true, or any exec's command_id) or workspace_status's commands.", required: true},
}

const commandFields = "Result: command_id, command, background, state (running; exited: see exit_code; timed_out: exit_code 124; " +
	"killed: exit_code 137; failed: see error), exit_code once it ended, started_at, ended_at, duration_ms, " +
	"stdout_bytes and stderr_bytes (all output so far: the cursors of its ends)."

func addCommandStatus(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Show a command's state without waiting: is a background command still running, how much output it wrote. " + commandFields,
		InputSchema: inputSchema[pyro.CommandRequest](commandRefProps)}
	addTool(s, d, t, handler(func(ctx context.Context, in pyro.CommandRequest) (*pyro.WorkspaceCommand, error) {
		return c.CommandStatus(ctx, in)
	}))
}

func addCommandLogs(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Read a command's output by cursor, while it runs or after it ended: stdout from cursor, stderr from stderr_cursor. " +
			"Pass next_cursor and next_stderr_cursor from the previous read to get only what is new; more=true means output is already " +
			"waiting past them. Also reads the full output of a workspace_exec whose result was truncated (its command_id). Each stream " +
			fmt.Sprintf("keeps its newest %d MiB; older output is reported in stdout_dropped_bytes/stderr_dropped_bytes. ", pyro.CommandLogBytes>>20) +
			"Result: stdout, stderr, stdout_from, next_cursor, stderr_from, next_stderr_cursor, the dropped counts, more, and the command's state and exit_code.",
		InputSchema: inputSchema[pyro.CommandLogsRequest](map[string]prop{
			"workspace_id":  commandRefProps["workspace_id"],
			"command_id":    commandRefProps["command_id"],
			"cursor":        {desc: "Stdout byte offset to read from: 0 for the start, else the last next_cursor.", def: 0, min: ptr(0.0)},
			"stderr_cursor": {desc: "Stderr byte offset to read from: 0 for the start, else the last next_stderr_cursor.", def: 0, min: ptr(0.0)},
			"max_bytes":     {desc: "At most this many bytes of each stream.", def: 16384, min: ptr(1.0), max: ptr(1048576.0)},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in pyro.CommandLogsRequest) (*pyro.CommandLogs, error) {
		return c.CommandLogs(ctx, in)
	}))
}

func addCommandWait(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Wait until a command ends, at most timeout_seconds (progress notifications keep coming meanwhile); if it is still " +
			"running then, state is running: call again, or read its output with command_logs. " + commandFields,
		InputSchema: inputSchema[pyro.WaitCommandRequest](map[string]prop{
			"workspace_id":    commandRefProps["workspace_id"],
			"command_id":      commandRefProps["command_id"],
			"timeout_seconds": {desc: "Wait at most this long.", def: pyro.DefaultWaitSeconds, min: ptr(1.0), max: ptr(float64(pyro.MaxWaitSeconds))},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in pyro.WaitCommandRequest) (*pyro.WorkspaceCommand, error) {
		return c.WaitCommand(ctx, in)
	}))
}

func addCommandKill(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Kill a running command and everything it started (its process group), and wait for it to end. " +
			"Its output stays readable with command_logs. " + commandFields,
		InputSchema: inputSchema[pyro.CommandRequest](commandRefProps)}
	addTool(s, d, t, handler(func(ctx context.Context, in pyro.CommandRequest) (*pyro.WorkspaceCommand, error) {
		return c.KillCommand(ctx, in)
	}))
}

// toolText is the text content of a result. Hosts show a model either the
// structured content (Claude Code, VS Code) or the text (many others), few
// both: so the text must carry what the model needs, but never the JSON
// again. Results with command output are rendered as a summary line and
// the output as it is (no JSON escaping); other results are small, and their
// JSON is the text, as the MCP spec suggests.
func toolText(out any, js []byte) string {
	switch r := out.(type) {
	case *pyro.RunResult:
		return outputText(fmt.Sprintf("exit_code %d%s in %d ms (vm %s, boot %d ms)", r.ExitCode, timedOut(r.TimedOut), r.DurationMs, r.VMID, r.BootMs),
			r.Stdout, r.Stderr, r.StdoutTruncated, r.StderrTruncated, "")
	case *pyro.WorkspaceExecResult:
		if r.State == pyro.CommandRunning {
			return fmt.Sprintf("started in the background: command_id %s (workspace %s); follow it with command_logs, command_wait, command_kill",
				r.CommandID, r.WorkspaceID)
		}
		more := ""
		if (r.StdoutTruncated || r.StderrTruncated) && r.CommandID != "" {
			more = fmt.Sprintf("output truncated: read all of it with command_logs (workspace_id %s, command_id %s)", r.WorkspaceID, r.CommandID)
		}
		return outputText(fmt.Sprintf("exit_code %d%s in %d ms (workspace %s, sequence %d, command_id %s)", r.ExitCode, timedOut(r.TimedOut),
			r.DurationMs, r.WorkspaceID, r.Sequence, r.CommandID), r.Stdout, r.Stderr, r.StdoutTruncated, r.StderrTruncated, more)
	case *pyro.CommandLogs:
		head := fmt.Sprintf("command %s: %s", r.CommandID, r.State)
		if r.ExitCode != nil {
			head += fmt.Sprintf(", exit_code %d", *r.ExitCode)
		}
		head += fmt.Sprintf("; next_cursor %d, next_stderr_cursor %d", r.NextCursor, r.NextStderrCursor)
		if r.More {
			head += ", more output waiting"
		}
		if d := r.StdoutDroppedBytes + r.StderrDroppedBytes; d > 0 {
			head += fmt.Sprintf(", %d older bytes dropped", d)
		}
		return outputText(head, r.Stdout, r.Stderr, false, false, "")
	}
	return string(js)
}

func timedOut(t bool) string {
	if t {
		return " (timed out)"
	}
	return ""
}

// outputText is a summary line, then each non-empty stream under a header.
func outputText(head, stdout, stderr string, outCut, errCut bool, note string) string {
	var b strings.Builder
	b.WriteString(head)
	for _, s := range []struct {
		name string
		text string
		cut  bool
	}{{"stdout", stdout, outCut}, {"stderr", stderr, errCut}} {
		if s.text == "" {
			continue
		}
		fmt.Fprintf(&b, "\n--- %s", s.name)
		if s.cut {
			b.WriteString(" (truncated)")
		}
		b.WriteString(" ---\n")
		b.WriteString(s.text)
	}
	if note != "" {
		b.WriteString("\n" + note)
	}
	return b.String()
}
