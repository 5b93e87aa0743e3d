package pyro

import (
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
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
const TimeoutExitCode = 124

// execOutput maps a finished guest command to what every face reports.
func execOutput(r *agentclient.ExecResult) ExecOutput {
	return ExecOutput{
		ExitCode: outcome(r.ExitCode, r.Signal, r.TimedOut), Signal: r.Signal,
		Stdout: string(r.Stdout), Stderr: string(r.Stderr),
		StdoutTruncated: r.StdoutTruncated, StderrTruncated: r.StderrTruncated,
		TimedOut: r.TimedOut, DurationMs: r.DurationMs,
	}
}

// outcome is the exit code every face reports: the command's own, 128+N when
// a signal killed it (as a shell reports it), 124 when it hit its timeout.
func outcome(exitCode int, signal string, timedOut bool) int {
	switch {
	case timedOut:
		return TimeoutExitCode
	case signal != "" && exitCode < 0:
		return 128 + int(unix.SignalNum("SIG"+signal))
	}
	return exitCode
}

// execLimits are the settings every exec shares: the shell command, its
// timeout and its output cap. Zero values take the defaults.
type execLimits struct {
	Command        string
	TimeoutSeconds int
	MaxOutputBytes int64
}

// withDefaults fills zero values and checks ranges, naming the field at fault.
func (l execLimits) withDefaults() (execLimits, error) {
	if l.TimeoutSeconds == 0 {
		l.TimeoutSeconds = DefaultTimeoutSeconds
	}
	if l.MaxOutputBytes == 0 {
		l.MaxOutputBytes = DefaultMaxOutputBytes
	}
	switch {
	case strings.TrimSpace(l.Command) == "":
		return l, errdefs.InvalidArgument("command", "is empty; give the shell command to run in the guest")
	case l.TimeoutSeconds < 1 || l.TimeoutSeconds > MaxTimeoutSeconds:
		return l, errdefs.InvalidArgument("timeout_seconds", "%d is out of range [1, %d]", l.TimeoutSeconds, MaxTimeoutSeconds)
	case l.MaxOutputBytes < 0 || l.MaxOutputBytes > MaxMaxOutputBytes:
		return l, errdefs.InvalidArgument("max_output_bytes", "%d is out of range [0, %d]", l.MaxOutputBytes, MaxMaxOutputBytes)
	}
	return l, nil
}

// guestRequest checks l, fills its defaults and builds the guest request of
// the command, with the caller's variables (env) in cwd ("" = /workspace).
func (l execLimits) guestRequest(env map[string]string, cwd string) (agentproto.ExecRequest, error) {
	l, err := l.withDefaults()
	if err != nil {
		return agentproto.ExecRequest{}, err
	}
	vars, err := guestexec.Env(env)
	if err != nil {
		return agentproto.ExecRequest{}, err
	}
	return guestexec.Shell(l.Command, vars, cwd, time.Duration(l.TimeoutSeconds)*time.Second, l.MaxOutputBytes), nil
}
