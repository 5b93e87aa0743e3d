package pyro

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/supervisor"
	"github.com/pyrovm/pyro/internal/workspace"
)

// Service states.
const (
	ServiceStarting = agentproto.ServiceStarting
	ServiceReady    = agentproto.ServiceReady
	ServiceFailed   = agentproto.ServiceFailed  // readiness never came; the process is gone
	ServiceExited   = agentproto.ServiceExited  // ended on its own (see ExitCode)
	ServiceStopped  = agentproto.ServiceStopped // ended by StopService
)

// Service defaults.
const (
	DefaultReadyTimeoutSeconds = 30
	DefaultReadyIntervalMs     = 200
)

// Service is a long-running process in a workspace. Its log and state live
// under /run/pyro-services in the guest, never in /workspace.
type Service struct {
	WorkspaceID string     `json:"workspace_id"`
	Name        string     `json:"name"`
	State       string     `json:"state"`
	Command     string     `json:"command"`
	Cwd         string     `json:"cwd"`
	Pid         int        `json:"pid,omitempty"`
	ReadyKind   string     `json:"ready_kind,omitempty"` // file, tcp, http, command; empty = ready once running
	ReadyTarget string     `json:"ready_target,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	ReadyAt     *time.Time `json:"ready_at,omitempty"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	ExitCode    *int       `json:"exit_code,omitempty"`
	Signal      string     `json:"signal,omitempty"`
	Reason      string     `json:"reason,omitempty"` // why it failed
	LogPath     string     `json:"log_path"`         // in the guest
	// PublishedPorts are the service's ports on the host's 127.0.0.1 while
	// it runs (network policy egress+published-ports).
	PublishedPorts []PublishedPort `json:"published_ports,omitempty"`
}

// PublishedPort is a guest TCP port reachable on the host at
// HostAddress:HostPort (HostAddress is always 127.0.0.1).
type PublishedPort struct {
	GuestPort   int    `json:"guest_port"`
	HostPort    int    `json:"host_port"`
	HostAddress string `json:"host_address"`
}

// PortMapping asks for a guest port on the host: HostPort 0 lets the host
// pick a free port.
type PortMapping struct {
	GuestPort int `json:"guest_port"`
	HostPort  int `json:"host_port,omitempty"`
}

func toService(wsID string, svc *supervisor.Service) Service {
	i := &svc.ServiceInfo
	s := Service{
		WorkspaceID: wsID, Name: i.Name, State: i.State, Cwd: i.Cwd, Pid: i.Pid,
		ReadyKind: i.ReadyKind, ReadyTarget: i.ReadyTarget, ExitCode: i.ExitCode, Signal: i.Signal,
		Reason: i.Reason, LogPath: i.LogPath,
		StartedAt: guestTime(i.StartedAt), ReadyAt: guestTime(i.ReadyAt), EndedAt: guestTime(i.EndedAt),
	}
	// Services run as /bin/sh -lc COMMAND; show the command as it was given.
	if len(i.Argv) == 3 && i.Argv[0] == "/bin/sh" && i.Argv[1] == "-lc" {
		s.Command = i.Argv[2]
	} else {
		s.Command = strings.Join(i.Argv, " ")
	}
	s.PublishedPorts = toPublishedPorts(svc.PublishedPorts)
	return s
}

func toPublishedPorts(in []network.Published) []PublishedPort {
	var out []PublishedPort
	for _, p := range in {
		out = append(out, PublishedPort{GuestPort: p.GuestPort, HostPort: p.HostPort, HostAddress: p.HostAddress})
	}
	return out
}

func guestTime(s string) *time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil
	}
	t = t.UTC()
	return &t
}

// StartServiceRequest starts Command (a shell string) as a service. At most
// one readiness check: ReadyFile (a path relative to Cwd), ReadyTCP (a guest
// port), ReadyHTTP (a URL answering below 500) or ReadyCommand (exits 0).
// Without one the service is ready as soon as it runs.
type StartServiceRequest struct {
	Workspace           string `json:"workspace_id"`
	Name                string `json:"name"`
	Command             string `json:"command"`
	Cwd                 string `json:"cwd,omitempty"`
	ReadyFile           string `json:"ready_file,omitempty"`
	ReadyTCP            int    `json:"ready_tcp,omitempty"`
	ReadyHTTP           string `json:"ready_http,omitempty"`
	ReadyCommand        string `json:"ready_command,omitempty"`
	ReadyTimeoutSeconds int    `json:"ready_timeout_seconds,omitempty"`
	ReadyIntervalMs     int    `json:"ready_interval_ms,omitempty"`
	// SecretEnv sets secrets as environment variables of the service:
	// secret name -> variable name ("" = the secret's name).
	SecretEnv map[string]string `json:"secret_env,omitempty"`
	// Publish makes guest TCP ports reachable on the host's 127.0.0.1 while
	// the service runs. The workspace needs network policy
	// egress+published-ports.
	Publish []PortMapping `json:"published_ports,omitempty"`
}

func (r StartServiceRequest) readiness() (kind, target string, err error) {
	n := 0
	set := func(k, t string, on bool) {
		if on {
			n++
			kind, target = k, t
		}
	}
	set(agentproto.ReadyFile, r.ReadyFile, r.ReadyFile != "")
	set(agentproto.ReadyTCP, strconv.Itoa(r.ReadyTCP), r.ReadyTCP != 0)
	set(agentproto.ReadyHTTP, r.ReadyHTTP, r.ReadyHTTP != "")
	set(agentproto.ReadyCommand, r.ReadyCommand, r.ReadyCommand != "")
	switch {
	case n > 1:
		return "", "", errdefs.InvalidArgument("readiness", "give at most one of ready_file, ready_tcp, ready_http and ready_command")
	case r.ReadyTCP < 0 || r.ReadyTCP > 65535:
		return "", "", errdefs.InvalidArgument("ready_tcp", "port %d is out of range 1..65535", r.ReadyTCP)
	case r.ReadyHTTP != "" && !strings.HasPrefix(r.ReadyHTTP, "http://"):
		return "", "", errdefs.InvalidArgument("ready_http", "%q is not an http:// URL (e.g. http://127.0.0.1:8000/)", r.ReadyHTTP)
	}
	return kind, target, nil
}

func (r StartServiceRequest) validate() error {
	switch {
	case !workspace.SafeName(r.Name):
		return errdefs.InvalidArgument("name", "%q is not a service name: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", r.Name)
	case strings.TrimSpace(r.Command) == "":
		return errdefs.InvalidArgument("command", "a service needs a command")
	case r.ReadyTimeoutSeconds < 0 || r.ReadyTimeoutSeconds > 600:
		return errdefs.InvalidArgument("ready_timeout_seconds", "%d is out of range 1..600", r.ReadyTimeoutSeconds)
	case r.ReadyIntervalMs != 0 && (r.ReadyIntervalMs < 20 || r.ReadyIntervalMs > 10000):
		return errdefs.InvalidArgument("ready_interval_ms", "%d is out of range 20..10000", r.ReadyIntervalMs)
	}
	for _, p := range r.Publish {
		if p.GuestPort < 1 || p.GuestPort > 65535 || p.HostPort < 0 || p.HostPort > 65535 {
			return errdefs.InvalidArgument("published_ports", "guest port %d, host port %d: ports are 1..65535 (host port 0: any free port)", p.GuestPort, p.HostPort)
		}
	}
	_, _, err := r.readiness()
	return err
}

// StartService starts a service and returns once it is ready. When it does
// not get ready (its readiness never came, or it exited first) the process
// is gone, and StartService returns the failed Service together with a
// service_failed error that gives the reason and the end of its log.
func (c *Client) StartService(ctx context.Context, req StartServiceRequest) (*Service, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	kind, target, _ := req.readiness()
	if req.ReadyTimeoutSeconds == 0 {
		req.ReadyTimeoutSeconds = DefaultReadyTimeoutSeconds
	}
	if req.ReadyIntervalMs == 0 {
		req.ReadyIntervalMs = DefaultReadyIntervalMs
	}
	r, res, err := c.workspaces(ctx).StartService(ctx, req.Workspace, supervisor.ServiceStartRequest{
		Name: req.Name, Command: req.Command, Cwd: req.Cwd, ReadyKind: kind, ReadyTarget: target,
		ReadyTimeoutMs: int64(req.ReadyTimeoutSeconds) * 1000, ReadyIntervalMs: int64(req.ReadyIntervalMs),
		Publish: portMappings(req.Publish),
	}, req.SecretEnv)
	if err != nil {
		return nil, err
	}
	s := toService(r.ID, &res.Service)
	if s.State != ServiceReady {
		return &s, serviceFailed(&s, res.LogTail)
	}
	return &s, nil
}

func serviceFailed(s *Service, logTail string) error {
	reason := s.Reason
	if reason == "" {
		reason = "state " + s.State
	}
	msg := fmt.Sprintf("service %s did not get ready: %s", s.Name, reason)
	if t := strings.TrimRight(logTail, "\n"); t != "" {
		msg += "\n--- end of its log ---\n" + t
	} else {
		msg += " (its log is empty)"
	}
	return errdefs.New(errdefs.ErrFailedPrecondition, CodeServiceFailed, "%s", msg)
}

// ListServices lists a workspace's services by name, in every state.
func (c *Client) ListServices(ctx context.Context, ref string) ([]Service, error) {
	r, l, err := c.workspaces(ctx).Services(ctx, ref)
	if err != nil {
		return nil, err
	}
	out := make([]Service, 0, len(l))
	for i := range l {
		out = append(out, toService(r.ID, &l[i]))
	}
	return out, nil
}

// ServiceRequest names one service of a workspace.
type ServiceRequest struct {
	Workspace string `json:"workspace_id"` // id or name
	Name      string `json:"name"`
}

// ServiceStatus describes one service.
func (c *Client) ServiceStatus(ctx context.Context, req ServiceRequest) (*Service, error) {
	r, info, err := c.workspaces(ctx).ServiceStatus(ctx, req.Workspace, req.Name)
	if err != nil {
		return nil, err
	}
	s := toService(r.ID, info)
	return &s, nil
}

// ServiceLogs is the end of a service's log (stdout and stderr together).
type ServiceLogs struct {
	WorkspaceID string `json:"workspace_id"`
	Name        string `json:"name"`
	Log         string `json:"log"`
	Truncated   bool   `json:"truncated"` // older output was left out
}

// ServiceLogsRequest names the service whose log ServiceLogs reads.
type ServiceLogsRequest struct {
	Workspace string `json:"workspace_id"` // id or name
	Name      string `json:"name"`
	// TailLines keeps the last lines only; 0 = the whole log (at most 1 MiB).
	TailLines int `json:"tail_lines,omitempty"`
}

// ServiceLogs returns the end of a service's log, at most 1 MiB.
func (c *Client) ServiceLogs(ctx context.Context, req ServiceLogsRequest) (*ServiceLogs, error) {
	ref, name, tailLines := req.Workspace, req.Name, req.TailLines
	if tailLines < 0 {
		return nil, errdefs.InvalidArgument("tail_lines", "must not be negative")
	}
	r, l, err := c.workspaces(ctx).ServiceLogs(ctx, ref, name, tailLines, 1<<20)
	if err != nil {
		return nil, err
	}
	return &ServiceLogs{WorkspaceID: r.ID, Name: name, Log: string(l.Log), Truncated: l.Truncated}, nil
}

// StopService sends TERM to the service's process group, KILL after 5 s,
// and reaps it. Stopping an ended service returns it unchanged.
func (c *Client) StopService(ctx context.Context, req ServiceRequest) (*Service, error) {
	r, info, err := c.workspaces(ctx).StopService(ctx, req.Workspace, req.Name)
	if err != nil {
		return nil, err
	}
	s := toService(r.ID, info)
	return &s, nil
}

func portMappings(in []PortMapping) []supervisor.PortMapping {
	out := make([]supervisor.PortMapping, len(in))
	for i, p := range in {
		out[i] = supervisor.PortMapping{GuestPort: p.GuestPort, HostPort: p.HostPort}
	}
	return out
}
