package supervisor

import (
	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/secrets"
)

// Everything the supervisor answers passes through these, so that no secret
// value of the workspace is shown: command output, service infos and logs,
// error messages. Archives are not redacted here: snapshots keep the real
// bytes (the workspace manager redacts file reads, diffs and exports). A
// nil Redactor changes nothing.

// redactExecResult converts a finished command's result for the API.
func redactExecResult(r *secrets.Redactor, res *agentclient.ExecResult) ExecResult {
	return ExecResult{
		ExitCode: res.ExitCode, Signal: res.Signal,
		Stdout: redactOutput(r, res.Stdout, res.StdoutTruncated), Stderr: redactOutput(r, res.Stderr, res.StderrTruncated),
		StdoutTruncated: res.StdoutTruncated, StderrTruncated: res.StderrTruncated,
		TimedOut: res.TimedOut, DurationMs: res.DurationMs,
	}
}

// redactOutput redacts a command's output; output cut short may end in the
// middle of a value, which is hidden too.
func redactOutput(r *secrets.Redactor, b []byte, truncated bool) []byte {
	if r == nil || len(b) == 0 {
		return b
	}
	if truncated {
		return []byte(r.Clipped(string(b), false, true))
	}
	return r.Bytes(b)
}

// redactService hides values in a service's command and failure reason.
func redactService(r *secrets.Redactor, info agentproto.ServiceInfo) agentproto.ServiceInfo {
	if r == nil {
		return info
	}
	if info.Argv != nil {
		argv := make([]string, len(info.Argv))
		for i, a := range info.Argv {
			argv[i] = r.String(a)
		}
		info.Argv = argv
	}
	info.Reason = r.String(info.Reason)
	info.ReadyTarget = r.String(info.ReadyTarget)
	return info
}

func redactServices(r *secrets.Redactor, l []agentproto.ServiceInfo) []agentproto.ServiceInfo {
	if r == nil || l == nil {
		return l
	}
	out := make([]agentproto.ServiceInfo, len(l))
	for i, info := range l {
		out[i] = redactService(r, info)
	}
	return out
}

// redactLog redacts the end of a service's log; when older lines or bytes
// were left out, it may begin in the middle of a value, which is hidden too.
func redactLog(r *secrets.Redactor, log []byte, truncated bool) string {
	return r.Clipped(string(log), truncated, false)
}
