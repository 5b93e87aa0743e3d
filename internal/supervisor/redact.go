package supervisor

import (
	"context"
	"log/slog"

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
	out := *res
	out.Stdout = redactOutput(r, res.Stdout, res.StdoutTruncated)
	out.Stderr = redactOutput(r, res.Stderr, res.StderrTruncated)
	return ExecResult{ExecResult: out}
}

// redactOutput redacts a command's output; output cut short may end in the
// middle of a value, which is hidden too.
func redactOutput(r *secrets.Redactor, b []byte, truncated bool) []byte {
	if r == nil || len(b) == 0 {
		return b
	}
	return []byte(r.Clipped(string(b), false, truncated))
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

// redactLog redacts the end of a service's log; when older lines or bytes
// were left out, it may begin in the middle of a value, which is hidden too.
func redactLog(r *secrets.Redactor, log []byte, truncated bool) string {
	return r.Clipped(string(log), truncated, false)
}

// redactingHandler hides secret values in every log record: the
// supervisor's log tail reaches users in boot errors.
type redactingHandler struct {
	slog.Handler
	r *secrets.Redactor
}

// redactingLogger wraps log when there is anything to hide.
func redactingLogger(log *slog.Logger, r *secrets.Redactor) *slog.Logger {
	if r == nil {
		return log
	}
	return slog.New(redactingHandler{Handler: log.Handler(), r: r})
}

func (h redactingHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h redactingHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, x := range g {
			out[i] = h.attr(x)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindString, slog.KindAny: // errors and other values print as text
		return slog.String(a.Key, h.r.String(v.String()))
	}
	return a
}

func (h redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = h.attr(a)
	}
	return redactingHandler{Handler: h.Handler.WithAttrs(out), r: h.r}
}

func (h redactingHandler) WithGroup(name string) slog.Handler {
	return redactingHandler{Handler: h.Handler.WithGroup(name), r: h.r}
}
