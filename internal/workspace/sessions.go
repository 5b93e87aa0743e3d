package workspace

import (
	"context"
	"errors"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/shell"
	"github.com/pyrovm/pyro/internal/supervisor"
)

// Shells and services live in the workspace's supervisor and guest: these
// calls find the running workspace and pass through. Opening, writing and
// starting count as activity; reads do not.

// OpenShell opens a PTY shell; cwd is relative to /workspace or under it.
func (m *Manager) OpenShell(ctx context.Context, ref string, req supervisor.ShellOpenRequest) (*Record, *shell.Info, error) {
	cwd, err := GuestPath("cwd", req.Cwd)
	if err != nil {
		return nil, nil, err
	}
	req.Cwd = cwd
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	defer sc.Close()
	info, err := sc.OpenShell(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	return r, info, m.touch(r.ID)
}

// ReadShell reads a shell's output from a cursor.
func (m *Manager) ReadShell(ctx context.Context, ref, id string, req supervisor.ShellReadRequest) (*Record, *shell.ReadResult, error) {
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	defer sc.Close()
	res, err := sc.ReadShell(ctx, id, req)
	return r, res, shellErr(r, id, err)
}

// ShellInput writes to, signals or resizes a shell.
func (m *Manager) ShellInput(ctx context.Context, ref, id string, req supervisor.ShellInputRequest) (*Record, *shell.Info, error) {
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	defer sc.Close()
	info, err := sc.ShellInput(ctx, id, req)
	if err != nil {
		return nil, nil, shellErr(r, id, err)
	}
	return r, info, m.touch(r.ID)
}

// CloseShell hangs a shell up.
func (m *Manager) CloseShell(ctx context.Context, ref, id string) (*Record, *shell.Info, error) {
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	defer sc.Close()
	info, err := sc.CloseShell(ctx, id)
	return r, info, shellErr(r, id, err)
}

// shellErr explains a missing shell: shells live as long as the VM.
func shellErr(r *Record, id string, err error) error {
	var e *errdefs.Error
	if errors.As(err, &e) && e.Code == "shell_not_found" {
		return errdefs.New(errdefs.ErrNotFound, e.Code,
			"workspace %s has no shell %q: shells end when the workspace stops, restarts or is deleted; open a new one with `pyro workspace shell open %s`",
			r.ID, id, r.ID)
	}
	return err
}

// StartService starts a service and waits for readiness; cwd is relative to
// /workspace or under it.
func (m *Manager) StartService(ctx context.Context, ref string, req supervisor.ServiceStartRequest) (*Record, *supervisor.ServiceStartResult, error) {
	cwd, err := GuestPath("cwd", req.Cwd)
	if err != nil {
		return nil, nil, err
	}
	req.Cwd = cwd
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	defer sc.Close()
	res, err := sc.StartService(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	return r, res, m.touch(r.ID)
}

// Services lists a workspace's services.
func (m *Manager) Services(ctx context.Context, ref string) (*Record, []agentproto.ServiceInfo, error) {
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	defer sc.Close()
	l, err := sc.Services(ctx)
	return r, l, err
}

// ServiceStatus describes one service.
func (m *Manager) ServiceStatus(ctx context.Context, ref, name string) (*Record, *agentproto.ServiceInfo, error) {
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	defer sc.Close()
	info, err := sc.ServiceStatus(ctx, name)
	return r, info, err
}

// ServiceLogs returns the end of a service's log.
func (m *Manager) ServiceLogs(ctx context.Context, ref, name string, tailLines int, maxBytes int64) (*Record, *supervisor.ServiceLogs, error) {
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	defer sc.Close()
	l, err := sc.ServiceLogs(ctx, name, tailLines, maxBytes)
	return r, l, err
}

// StopService stops a service and reaps it.
func (m *Manager) StopService(ctx context.Context, ref, name string) (*Record, *agentproto.ServiceInfo, error) {
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	defer sc.Close()
	info, err := sc.StopService(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	return r, info, m.touch(r.ID)
}
