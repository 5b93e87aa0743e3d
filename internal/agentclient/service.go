package agentclient

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// Error codes of service calls.
const (
	CodeServiceNotFound = errdefs.CodeServiceNotFound
	CodeServiceExists   = errdefs.CodeServiceExists
	CodePortInUse       = errdefs.CodePortInUse
)

// maxServiceLog bounds what the host accepts as one logs answer.
const maxServiceLog = 8 << 20

// StartService starts a service and waits for it to be ready, or to fail. A
// failed start is not an error here: the info says failed and why.
func (c *Client) StartService(ctx context.Context, req agentproto.ServiceRequest) (*agentproto.ServiceInfo, error) {
	var info agentproto.ServiceInfo
	if err := c.serviceCall(ctx, agentproto.OpServiceStart, &req, &info); err != nil {
		return nil, err
	}
	return &info, checkService(&info, req.Name)
}

// ListServices lists every service the guest knows, by name.
func (c *Client) ListServices(ctx context.Context) ([]agentproto.ServiceInfo, error) {
	var l agentproto.ServiceList
	if err := c.serviceCall(ctx, agentproto.OpServiceList, &agentproto.ServiceRequest{}, &l); err != nil {
		return nil, err
	}
	if len(l.Services) > 10000 {
		return nil, protocolErr("%d services listed", len(l.Services))
	}
	for i := range l.Services {
		if err := checkService(&l.Services[i], ""); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(l.Services, func(a, b agentproto.ServiceInfo) int {
		if a.Name < b.Name {
			return -1
		} else if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return l.Services, nil
}

// ServiceStatus describes one service.
func (c *Client) ServiceStatus(ctx context.Context, name string) (*agentproto.ServiceInfo, error) {
	var info agentproto.ServiceInfo
	if err := c.serviceCall(ctx, agentproto.OpServiceStatus, &agentproto.ServiceRequest{Name: name}, &info); err != nil {
		return nil, err
	}
	return &info, checkService(&info, name)
}

// ServiceLogs returns the end of a service's log.
func (c *Client) ServiceLogs(ctx context.Context, name string, tailLines int, maxBytes int64) (*agentproto.ServiceLogs, error) {
	var l agentproto.ServiceLogs
	req := &agentproto.ServiceRequest{Name: name, TailLines: tailLines, MaxBytes: maxBytes}
	if err := c.serviceCall(ctx, agentproto.OpServiceLogs, req, &l); err != nil {
		return nil, err
	}
	limit := maxBytes
	if limit <= 0 || limit > maxServiceLog {
		limit = maxServiceLog
	}
	if int64(len(l.Log)) > limit {
		l.Log, l.Truncated = l.Log[int64(len(l.Log))-limit:], true
	}
	l.Name = name
	return &l, nil
}

// StopService stops a service (TERM, then KILL after grace) and reaps it.
func (c *Client) StopService(ctx context.Context, name string, grace time.Duration) (*agentproto.ServiceInfo, error) {
	var info agentproto.ServiceInfo
	req := &agentproto.ServiceRequest{Name: name, StopGraceMs: grace.Milliseconds()}
	if err := c.serviceCall(ctx, agentproto.OpServiceStop, req, &info); err != nil {
		return nil, err
	}
	return &info, checkService(&info, name)
}

func (c *Client) serviceCall(ctx context.Context, op string, req *agentproto.ServiceRequest, out any) error {
	bound := quickBound + time.Duration(req.StopGraceMs)*time.Millisecond
	if op == agentproto.OpServiceStart {
		bound = time.Duration(req.ReadyTimeoutMs)*time.Millisecond + quickBound + Grace // quickBound covers the agent's default ready timeout
	}
	st, err := c.call(ctx, agentproto.Request{Op: op, Service: req}, bound)
	if err != nil {
		return err
	}
	defer st.done()
	err = readResult(st, out)
	var we *errdefs.Error
	if errors.As(err, &we) {
		switch we.Code {
		case CodeNotFound:
			return errdefs.New(errdefs.ErrNotFound, CodeServiceNotFound, "no service named %q in this workspace", req.Name).
				WithNext(": %s to list them", "pyro workspace service list ID", "service_list")
		}
	}
	return err
}

var serviceStates = []string{
	agentproto.ServiceStarting, agentproto.ServiceReady, agentproto.ServiceFailed,
	agentproto.ServiceExited, agentproto.ServiceStopped,
}

// checkService validates what the guest says about a service.
func checkService(s *agentproto.ServiceInfo, wantName string) error {
	bad := func(format string, args ...any) error {
		return protocolErr("service info: %s", fmt.Sprintf(format, args...))
	}
	switch {
	case wantName != "" && s.Name != wantName:
		return bad("asked for %q, got %q", wantName, s.Name)
	case s.Name == "" || len(s.Name) > 63:
		return bad("bad name")
	case !slices.Contains(serviceStates, s.State):
		return bad("unknown state %q", s.State)
	case s.ExitCode != nil && (*s.ExitCode < -1 || *s.ExitCode > 255):
		return bad("exit code %d", *s.ExitCode)
	case s.Pid < 0 || len(s.Argv) > 4096:
		return bad("bad pid or argv")
	}
	size := len(s.Cwd) + len(s.ReadyTarget) + len(s.Reason) + len(s.Signal) + len(s.LogPath) +
		len(s.StartedAt) + len(s.ReadyAt) + len(s.EndedAt)
	for _, a := range s.Argv {
		size += len(a)
	}
	if size > 256<<10 { // argv, paths and a reason: far below this
		return bad("%d bytes of fields", size)
	}
	return nil
}
