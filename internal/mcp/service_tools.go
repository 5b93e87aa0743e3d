package mcp

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
)

var serviceRefProps = map[string]prop{
	"workspace_id": workspaceRefProps["workspace_id"],
	"name":         {desc: "Service name, as given to service_start.", required: true},
}

const serviceFields = "Result: name, state (starting, ready, failed, exited: ended on its own, see exit_code; stopped), " +
	"command, cwd, pid, ready_kind, ready_target, started_at, ready_at, ended_at, exit_code, signal, reason (why it failed), log_path, " +
	"published_ports ([{guest_port, host_port, host_address}] while it runs)."

func addServiceStart(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Start a long-running process (a server, a watcher) in the workspace and wait until it is ready. " +
			"Give at most one readiness check: ready_file, ready_tcp, ready_http or ready_command; without one it is ready once started. " +
			"If it does not get ready in ready_timeout_seconds, or exits first, it is stopped and the error gives the reason and the end of its log. " +
			"Its log and state live under /run/pyro-services, never in /workspace. " +
			"When the service needs a secret (a token, a key), name it in secret_env; never put secrets in the command text. " +
			"Secret values show as [REDACTED] in its log. " + serviceFields,
		InputSchema: inputSchema[pyro.StartServiceRequest](map[string]prop{
			"workspace_id":          workspaceRefProps["workspace_id"],
			"name":                  {desc: "Unique service name: letters, digits, '.', '_' or '-'.", required: true},
			"command":               {desc: "Shell command, run by /bin/sh -lc in its own session.", required: true},
			"cwd":                   {desc: "Working directory, relative to /workspace or absolute under it.", def: "/workspace"},
			"ready_file":            {desc: "Ready once this file exists (relative to cwd)."},
			"ready_tcp":             {desc: "Ready once this guest TCP port accepts connections.", min: ptr(1.0), max: ptr(65535.0)},
			"ready_http":            {desc: "Ready once this http:// URL answers with a status below 500, e.g. http://127.0.0.1:8000/."},
			"ready_command":         {desc: "Ready once this shell command exits 0."},
			"ready_timeout_seconds": {desc: "Give up (and stop the service) after this long.", def: pyro.DefaultReadyTimeoutSeconds, min: ptr(1.0), max: ptr(600.0)},
			"ready_interval_ms":     {desc: "Time between readiness checks.", def: pyro.DefaultReadyIntervalMs, min: ptr(20.0), max: ptr(10000.0)},
			"secret_env":            secretEnvProp,
			"published_ports": {desc: "Guest TCP ports to reach from the host while the service runs, each on the host's 127.0.0.1 " +
				"(the result's published_ports gives host_port). Needs a workspace created with network_policy egress+published-ports.",
				items: map[string]prop{
					"guest_port": {desc: "The port the service listens on in the guest.", required: true, min: ptr(1.0), max: ptr(65535.0)},
					"host_port":  {desc: "Port on the host's 127.0.0.1; 0 = any free port.", def: 0, min: ptr(0.0), max: ptr(65535.0)},
				}},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in pyro.StartServiceRequest) (*pyro.Service, error) {
		return c.StartService(ctx, in)
	}))
}

type serviceListOutput struct {
	Services []pyro.Service `json:"services"`
}

func addServiceList(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "List the workspace's services in every state (a service that ended on its own shows exited with its exit_code).",
		InputSchema: inputSchema[workspaceRefInput](workspaceRefProps)}
	addTool(s, d, t, handler(func(ctx context.Context, in workspaceRefInput) (serviceListOutput, error) {
		l, err := c.ListServices(ctx, in.WorkspaceID)
		return serviceListOutput{Services: l}, err
	}))
}

func addServiceStatus(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Show one service. " + serviceFields,
		InputSchema: inputSchema[namedInput](serviceRefProps)}
	addTool(s, d, t, handler(func(ctx context.Context, in namedInput) (*pyro.Service, error) {
		return c.ServiceStatus(ctx, pyro.ServiceRequest{Workspace: in.WorkspaceID, Name: in.Name})
	}))
}

type serviceLogsInput struct {
	WorkspaceID string `json:"workspace_id"`
	Name        string `json:"name"`
	TailLines   int    `json:"tail_lines,omitempty"`
}

func addServiceLogs(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Read the end of a service's log (stdout and stderr together). Result: log, truncated (older output left out).",
		InputSchema: inputSchema[serviceLogsInput](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"name":         serviceRefProps["name"],
			"tail_lines":   {desc: "Only the last this many lines; 0 for all (at most 1 MiB).", def: 0, min: ptr(0.0)},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in serviceLogsInput) (*pyro.ServiceLogs, error) {
		return c.ServiceLogs(ctx, pyro.ServiceLogsRequest{Workspace: in.WorkspaceID, Name: in.Name, TailLines: in.TailLines})
	}))
}

func addServiceStop(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Stop a service: TERM to its process group, KILL after 5 s. Stopping an ended service changes nothing. " + serviceFields,
		InputSchema: inputSchema[namedInput](serviceRefProps)}
	addTool(s, d, t, handler(func(ctx context.Context, in namedInput) (*pyro.Service, error) {
		return c.StopService(ctx, pyro.ServiceRequest{Workspace: in.WorkspaceID, Name: in.Name})
	}))
}
