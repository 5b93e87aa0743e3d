package workspace

import (
	"context"
	"errors"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/command"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/supervisor"
)

// Background commands live in the workspace's supervisor (internal/command):
// these calls find the running workspace and pass through. Starting and
// killing count as activity; reads and waits do not.

// StartCommand starts a background command in /workspace (or req.Cwd).
func (m *Manager) StartCommand(ctx context.Context, ref string, req agentproto.ExecRequest, secretEnv map[string]string) (*Record, *command.Info, error) {
	cwd, err := GuestPath("cwd", req.Cwd)
	if err != nil {
		return nil, nil, err
	}
	req.Cwd = cwd
	return viaSupervisor(ctx, m, ref, true, func(r *Record, sc *supervisor.Client) (*command.Info, error) {
		if _, err := m.execEnv(r.ID, &req, secretEnv); err != nil {
			return nil, err
		}
		return sc.StartCommand(ctx, supervisor.ExecRequest{ExecRequest: req})
	})
}

// Commands lists the commands a running workspace holds.
func (m *Manager) Commands(ctx context.Context, ref string) (*Record, []command.Info, error) {
	return viaSupervisor(ctx, m, ref, false, func(_ *Record, sc *supervisor.Client) ([]command.Info, error) {
		return sc.Commands(ctx)
	})
}

// Command describes one command.
func (m *Manager) Command(ctx context.Context, ref, id string) (*Record, *command.Info, error) {
	return viaSupervisor(ctx, m, ref, false, func(r *Record, sc *supervisor.Client) (*command.Info, error) {
		i, err := sc.Command(ctx, id)
		return i, commandErr(r, id, err)
	})
}

// CommandLogs reads a command's output from cursors.
func (m *Manager) CommandLogs(ctx context.Context, ref, id string, req supervisor.CommandLogsRequest) (*Record, *supervisor.CommandLogs, error) {
	return viaSupervisor(ctx, m, ref, false, func(r *Record, sc *supervisor.Client) (*supervisor.CommandLogs, error) {
		l, err := sc.CommandLogs(ctx, id, req)
		return l, commandErr(r, id, err)
	})
}

// WaitCommand waits for a command to end, at most req.TimeoutMs.
func (m *Manager) WaitCommand(ctx context.Context, ref, id string, req supervisor.CommandWaitRequest) (*Record, *command.Info, error) {
	return viaSupervisor(ctx, m, ref, false, func(r *Record, sc *supervisor.Client) (*command.Info, error) {
		i, err := sc.WaitCommand(ctx, id, req)
		return i, commandErr(r, id, err)
	})
}

// KillCommand kills a running command.
func (m *Manager) KillCommand(ctx context.Context, ref, id string) (*Record, *command.Info, error) {
	return viaSupervisor(ctx, m, ref, true, func(r *Record, sc *supervisor.Client) (*command.Info, error) {
		i, err := sc.KillCommand(ctx, id)
		return i, commandErr(r, id, err)
	})
}

// commandErr explains a missing command: commands live as long as the VM,
// and only the newest finished ones are kept.
func commandErr(r *Record, id string, err error) error {
	var e *errdefs.Error
	if errors.As(err, &e) && e.Code == command.CodeNotFound {
		return errdefs.New(errdefs.ErrNotFound, e.Code,
			"workspace %s has no command %q: commands end when the workspace stops, restarts, is reset or is deleted, and only the newest %d finished ones are kept; list them with the workspace's status",
			r.ID, id, command.KeepFinished)
	}
	return err
}
