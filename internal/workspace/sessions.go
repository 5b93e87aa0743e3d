package workspace

import (
	"context"
	"errors"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/shell"
	"github.com/pyrovm/pyro/internal/supervisor"
)

// Shells and services live in the workspace's supervisor and guest: these
// calls find the running workspace and pass through. Opening, writing,
// starting and stopping count as activity; reads do not.

// viaSupervisor calls f with the supervisor of a running workspace, and
// records activity after it when touch is set.
func viaSupervisor[T any](ctx context.Context, m *Manager, ref string, touch bool, f func(*Record, *supervisor.Client) (T, error)) (*Record, T, error) {
	var zero T
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, zero, err
	}
	defer sc.Close()
	v, err := f(r, sc)
	if refusedByPause(err) {
		var sc2 *supervisor.Client
		if r, sc2, err = m.afterPause(ctx, ref); err == nil {
			defer sc2.Close()
			v, err = f(r, sc2)
		}
	}
	if err != nil {
		return nil, zero, err
	}
	if touch {
		err = m.touch(r.ID)
	}
	return r, v, err
}

// OpenShell opens a PTY shell; cwd is relative to /workspace or under it.
// secretEnv maps secret names to variables set in the shell only.
func (m *Manager) OpenShell(ctx context.Context, ref string, req supervisor.ShellOpenRequest, secretEnv map[string]string) (*Record, *shell.Info, error) {
	cwd, err := GuestPath("cwd", req.Cwd)
	if err != nil {
		return nil, nil, err
	}
	req.Cwd = cwd
	return viaSupervisor(ctx, m, ref, true, func(r *Record, sc *supervisor.Client) (*shell.Info, error) {
		var err error
		if req.Env, err = m.withSecretEnv(r.ID, req.Env, secretEnv); err != nil {
			return nil, err
		}
		return sc.OpenShell(ctx, req)
	})
}

// ReadShell reads a shell's output from a cursor.
func (m *Manager) ReadShell(ctx context.Context, ref, id string, req supervisor.ShellReadRequest) (*Record, *shell.ReadResult, error) {
	return viaSupervisor(ctx, m, ref, false, func(r *Record, sc *supervisor.Client) (*shell.ReadResult, error) {
		res, err := sc.ReadShell(ctx, id, req)
		return res, shellErr(r, id, err)
	})
}

// ShellInput writes to, signals or resizes a shell.
func (m *Manager) ShellInput(ctx context.Context, ref, id string, req supervisor.ShellInputRequest) (*Record, *shell.Info, error) {
	return viaSupervisor(ctx, m, ref, true, func(r *Record, sc *supervisor.Client) (*shell.Info, error) {
		info, err := sc.ShellInput(ctx, id, req)
		return info, shellErr(r, id, err)
	})
}

// CloseShell hangs a shell up.
func (m *Manager) CloseShell(ctx context.Context, ref, id string) (*Record, *shell.Info, error) {
	return viaSupervisor(ctx, m, ref, false, func(r *Record, sc *supervisor.Client) (*shell.Info, error) {
		info, err := sc.CloseShell(ctx, id)
		return info, shellErr(r, id, err)
	})
}

// shellErr explains a missing shell: shells live as long as the VM.
func shellErr(r *Record, id string, err error) error {
	var e *errdefs.Error
	if errors.As(err, &e) && e.Code == shell.CodeShellNotFound {
		return errdefs.New(errdefs.ErrNotFound, e.Code,
			"workspace %s has no shell %q: shells end when the workspace stops, pauses (a shell's terminal lives on the host's session with the guest agent, which a pause closes), restarts, is reset or is deleted", r.ID, id).
			WithNext("; %s to open a new one", "pyro workspace shell open "+r.ID, "shell_open")
	}
	return err
}

// StartService starts a service and waits for readiness; cwd is relative to
// /workspace or under it.
func (m *Manager) StartService(ctx context.Context, ref string, req supervisor.ServiceStartRequest, secretEnv map[string]string) (*Record, *supervisor.ServiceStartResult, error) {
	cwd, err := GuestPath("cwd", req.Cwd)
	if err != nil {
		return nil, nil, err
	}
	req.Cwd = cwd
	return viaSupervisor(ctx, m, ref, true, func(r *Record, sc *supervisor.Client) (*supervisor.ServiceStartResult, error) {
		var err error
		if req.Env, err = m.withSecretEnv(r.ID, req.Env, secretEnv); err != nil {
			return nil, err
		}
		return sc.StartService(ctx, req)
	})
}

// Services lists a workspace's services.
func (m *Manager) Services(ctx context.Context, ref string) (*Record, []supervisor.Service, error) {
	return viaSupervisor(ctx, m, ref, false, func(_ *Record, sc *supervisor.Client) ([]supervisor.Service, error) {
		return sc.Services(ctx)
	})
}

// ServiceStatus describes one service.
func (m *Manager) ServiceStatus(ctx context.Context, ref, name string) (*Record, *supervisor.Service, error) {
	return viaSupervisor(ctx, m, ref, false, func(_ *Record, sc *supervisor.Client) (*supervisor.Service, error) {
		return sc.ServiceStatus(ctx, name)
	})
}

// ServiceLogs returns the end of a service's log.
func (m *Manager) ServiceLogs(ctx context.Context, ref, name string, tailLines int, maxBytes int64) (*Record, *agentproto.ServiceLogs, error) {
	return viaSupervisor(ctx, m, ref, false, func(_ *Record, sc *supervisor.Client) (*agentproto.ServiceLogs, error) {
		return sc.ServiceLogs(ctx, name, tailLines, maxBytes)
	})
}

// StopService stops a service and reaps it.
func (m *Manager) StopService(ctx context.Context, ref, name string) (*Record, *supervisor.Service, error) {
	return viaSupervisor(ctx, m, ref, true, func(_ *Record, sc *supervisor.Client) (*supervisor.Service, error) {
		return sc.StopService(ctx, name)
	})
}

// Network describes the workspace's network: nil info when it is not
// running (its policy is in the record).
func (m *Manager) Network(ctx context.Context, ref string) (*Record, *network.Info, error) {
	r, err := m.Resolve(ref)
	if err != nil {
		return nil, nil, err
	}
	if r.State = m.liveState(ctx, r); r.State != StateRunning {
		return r, nil, nil
	}
	return viaSupervisor(ctx, m, ref, false, func(_ *Record, sc *supervisor.Client) (*network.Info, error) {
		return sc.Network(ctx)
	})
}
