package pyro

import (
	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/guestexec"
)

// Every exec (Run, ExecWorkspace, ExecVM) takes one path to the guest and
// back: its public request is checked and given its defaults here
// (execLimits), turned into the one guest request by guestexec.Shell, run
// by internal/oneshot or a workspace's supervisor, and its result, an
// agentclient.ExecResult on every path, becomes the ExecOutput both public
// results embed (execOutput). See docs/architecture.md, "Data flow".

// ExecOutput is how a guest command ended and what it printed: the part
// RunResult and WorkspaceExecResult share.
type ExecOutput struct {
	// ExitCode is the command's own; 128+N when signal N killed it;
	// TimeoutExitCode when it hit its timeout.
	ExitCode        int    `json:"exit_code"`
	Signal          string `json:"signal,omitempty"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	StderrTruncated bool   `json:"stderr_truncated"`
	TimedOut        bool   `json:"timed_out"`
	DurationMs      int64  `json:"duration_ms"`
}

// TimeoutExitCode is the exit code reported for a command that hit its timeout.
const TimeoutExitCode = guestexec.TimeoutExitCode

// execOutput maps a finished guest command to what every face reports.
func execOutput(r *agentclient.ExecResult) ExecOutput {
	return ExecOutput{
		ExitCode: guestexec.Outcome(r.ExitCode, r.Signal, r.TimedOut), Signal: r.Signal,
		Stdout: string(r.Stdout), Stderr: string(r.Stderr),
		StdoutTruncated: r.StdoutTruncated, StderrTruncated: r.StderrTruncated,
		TimedOut: r.TimedOut, DurationMs: r.DurationMs,
	}
}

// execLimits are the settings every exec shares (guestexec.Limits).
type execLimits = guestexec.Limits
