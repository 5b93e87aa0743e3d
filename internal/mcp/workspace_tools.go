package mcp

import (
	"context"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
)

var coreAndFull = []Profile{ProfileWorkspaceCore, ProfileWorkspaceFull}

type workspaceCreateInput struct {
	Environment  string            `json:"environment,omitempty"`
	EnvFile      string            `json:"env_file,omitempty"`
	SeedPath     string            `json:"seed_path,omitempty"`
	Name         string            `json:"name,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	VCPUCount    int               `json:"vcpu_count,omitempty"`
	MemMiB       int               `json:"mem_mib,omitempty"`
	TTLSeconds   int               `json:"ttl_seconds,omitempty"`
	TTLAction    string            `json:"ttl_action,omitempty"`
	IdlePause    int               `json:"idle_pause_seconds,omitempty"`
	Secrets      []secretInput     `json:"secrets,omitempty"`
	Network      string            `json:"network_policy,omitempty"`
	AllowHosts   []string          `json:"allow_hosts,omitempty"`
	AllowCIDRs   []string          `json:"allow_cidrs,omitempty"`
	AllowPresets []string          `json:"allow_presets,omitempty"`
}

// secretInput is one secret of workspace_create. It takes a value only:
// unlike the CLI and SDK there is no file_path, so that a model cannot read
// arbitrary host files into a guest.
type secretInput struct {
	Name        string   `json:"name"`
	Value       string   `json:"value"`
	BrokerHosts []string `json:"broker_hosts,omitempty"`
}

// brokeredSecretsProp describes the secrets of vm_run and vm_create:
// brokered only, so the guest never holds a value.
var brokeredSecretsProp = prop{desc: "Optional brokered secrets (HTTP API tokens) the command uses without ever holding them: " +
	"[{\"name\": ..., \"value\": ..., \"broker_hosts\": [\"api.example.com\"]}]. The guest gets $NAME set to a placeholder; " +
	"pyro's network puts the real value in its place in request headers (e.g. Authorization: Bearer $NAME) sent over HTTPS or HTTP to " +
	"those hosts only. Needs the network.",
	items: map[string]prop{
		"name":         {desc: "Secret name: 1-64 letters, digits or '_', not starting with a digit; also the environment variable name.", required: true},
		"value":        {desc: "The secret's value, 4 bytes to 64 KiB.", required: true},
		"broker_hosts": {desc: "The host names (\"api.github.com\", \"*.example.com\") whose request headers get the value.", required: true},
	}}

// brokeredSecrets turns MCP secrets into the SDK's (nil stays nil).
func brokeredSecrets(in []secretInput) []pyro.WorkspaceSecret {
	var out []pyro.WorkspaceSecret
	for _, s := range in {
		hosts := s.BrokerHosts
		if hosts == nil {
			hosts = []string{} // brokered by definition here: no hosts is an error, not a delivered secret
		}
		out = append(out, pyro.WorkspaceSecret{Name: s.Name, Value: s.Value, BrokerHosts: hosts})
	}
	return out
}

// secretEnvProp describes secret_env wherever a call takes it.
var secretEnvProp = prop{desc: "Secrets to set as environment variables of this call only: an object mapping a secret's name " +
	"(from workspace_create's secrets) to the variable name; an empty string means the secret's own name, " +
	`e.g. {"GH_TOKEN": ""} or {"GH_TOKEN": "GITHUB_TOKEN"}. Use it instead of putting a secret in the command text.`}

const workspaceFields = "Result: workspace_id (use it in every later workspace_* call; the name works too), state " +
	"(running, paused or stopped; any call that needs the VM resumes a paused one), environment, command_count, seed_entries/seed_bytes (what /workspace started from), " +
	"last_activity_at, expires_at (when ttl_seconds is set), secrets (names and sources only, never values; a brokered secret's broker_hosts and placeholder), network_policy, egress_rules (the allow list, when there is one)."

// networkPolicyProp describes network_policy wherever a VM is defined.
var networkPolicyProp = prop{desc: "The guest's network: off (no network device), egress (outbound NAT to the internet and " +
	"other machines, never to this host, its loopback services or link-local/metadata addresses) or egress+published-ports " +
	"(egress, and services may publish TCP ports on the host's 127.0.0.1). Use off unless commands must download something.",
	def: "off", enum: []any{"off", "egress", "egress+published-ports"}}

func addWorkspaceCreate(s *mcp.Server, d deps, name string) {
	c := d.c
	cpuMin, cpuMax := rng(pyro.MinVCPUCount, pyro.MaxVCPUCount)
	memMin, memMax := rng(pyro.MinMemMiB, pyro.MaxMemMiB)
	ttlMin, ttlMax := rng(0, 30*24*3600)
	t := &mcp.Tool{
		Name: name,
		Description: "Create a persistent workspace: a Linux microVM whose /workspace directory keeps its files across " +
			"calls, seeded from a host directory or tar archive. Use it for multi-step work (edit, build, test, repeat); " +
			"use vm_run instead for a single command. Delete the workspace when done. " +
			"Use secrets for tokens and keys the commands need (never put a secret in command text): each is kept for the " +
			"workspace's life, appears in the guest as the root-only file /run/pyro-secrets/NAME and, for the calls that name it " +
			"in secret_env, as an environment variable, and is shown as [REDACTED] in command, shell and service output, file reads, diffs, exported files and errors. " +
			"A secret with broker_hosts (an HTTP API token) never enters the guest at all: secret_env gives a placeholder instead, and pyro's network " +
			"puts the real value in place of the placeholder in request headers (e.g. Authorization: Bearer $TOKEN) sent over HTTPS or HTTP to those hosts only; needs network_policy egress. " +
			"seed_path: " + d.host.read + " " + workspaceFields,
		InputSchema: inputSchema[workspaceCreateInput](map[string]prop{
			"environment": {desc: environmentDesc + " Default: the custom environment of the project's " + pyro.ProjectEnvFile +
				" when the seed directory has one, else " + pyro.DefaultEnvironment + "."},
			"env_file": {desc: "Host path of an environment file (TOML: from, steps, network, disk_size_mib) whose custom environment " +
				"the workspace runs in, built first when needed (cached by the file's content). Give environment or env_file, not both. " + d.host.read},
			"seed_path": {desc: "Host directory, .tar, .tar.gz or .tgz whose content becomes /workspace (the baseline). " + d.host.read +
				" Omit it to seed from the Git-tracked files of the server's project (when it has one); seed_skipped lists files left out."},
			"name":               {desc: "Optional unique name to address the workspace by."},
			"labels":             {desc: "Optional KEY: VALUE labels."},
			"vcpu_count":         {desc: "Virtual CPUs.", def: pyro.DefaultVCPUCount, min: cpuMin, max: cpuMax},
			"mem_mib":            {desc: "Guest memory in MiB.", def: pyro.DefaultMemMiB, min: memMin, max: memMax},
			"ttl_seconds":        {desc: ttlDesc(d.ttlSeconds), def: d.ttlSeconds, min: ttlMin, max: ttlMax},
			"ttl_action":         ttlActionProp,
			"idle_pause_seconds": {desc: idlePauseDesc, def: 0, min: ttlMin, max: ttlMax},
			"secrets": {desc: "Optional secrets (API tokens, keys) for the workspace's commands: [{\"name\": ..., \"value\": ...}]. " +
				"Values are never returned; the guest gets them as files /run/pyro-secrets/NAME and through secret_env.",
				items: map[string]prop{
					"name":  {desc: "Secret name: 1-64 letters, digits or '_', not starting with a digit; also the default environment variable name.", required: true},
					"value": {desc: "The secret's value, 4 bytes to 64 KiB.", required: true},
					"broker_hosts": {desc: "Broker the secret instead of delivering it: the host names (\"api.github.com\", \"*.example.com\") " +
						"whose HTTP(S) request headers get the real value in place of the placeholder the guest holds. The guest never sees the value."},
				}},
			"network_policy": networkPolicyProp,
			"allow_hosts":    allowProps["allow_hosts"],
			"allow_cidrs":    allowProps["allow_cidrs"],
			"allow_presets":  allowProps["allow_presets"],
		}),
	}
	addTool(s, d, t, handler(func(ctx context.Context, in workspaceCreateInput) (*pyro.Workspace, error) {
		if err := d.checkNetwork(in.Network); err != nil {
			return nil, err
		}
		seedDir := in.SeedPath
		if seedDir == "" {
			seedDir = d.projectPath
		}
		envFile := in.EnvFile
		if in.Environment == "" && envFile == "" {
			// The project's own environment file, else the default.
			if envFile = pyro.FindProjectEnvFile(seedDir); envFile == "" {
				in.Environment = pyro.DefaultEnvironment
			}
		}
		if err := d.checkEnvFileNetwork(envFile); err != nil {
			return nil, err
		}
		if in.TTLSeconds == 0 {
			in.TTLSeconds = d.ttlSeconds
		}
		cr := pyro.CreateWorkspaceRequest{
			Environment: in.Environment, EnvFile: in.EnvFile, SeedPath: in.SeedPath, Name: in.Name, Labels: in.Labels,
			VCPUCount: in.VCPUCount, MemMiB: in.MemMiB, TTLSeconds: in.TTLSeconds, NetworkPolicy: in.Network,
			TTLAction: in.TTLAction, IdlePauseSeconds: in.IdlePause,
			EgressRules: pyro.EgressRules{AllowHosts: in.AllowHosts, AllowCIDRs: in.AllowCIDRs, AllowPresets: in.AllowPresets},
		}
		for _, sec := range in.Secrets {
			cr.Secrets = append(cr.Secrets, pyro.WorkspaceSecret{Name: sec.Name, Value: sec.Value, BrokerHosts: sec.BrokerHosts})
		}
		if cr.SeedPath == "" && d.projectPath != "" {
			cr.SeedPath, cr.SeedGitTracked = d.projectPath, true
		}
		return c.CreateWorkspace(ctx, cr)
	}))
}

func ttlDesc(def int) string {
	if def == 0 {
		return "Delete the workspace after this many seconds without activity; 0 = never."
	}
	return fmt.Sprintf("Delete the workspace after this many seconds without activity (any call on it counts); "+
		"0 or omitted = this server's default, %d. Delete it yourself with workspace_delete when done.", def)
}

type workspaceRefInput struct {
	WorkspaceID string `json:"workspace_id"`
}

var workspaceRefProps = map[string]prop{
	"workspace_id": {desc: "Workspace id (or name) from workspace_create or workspace_list.", required: true},
}

// addWorkspaceRefTool registers a tool that takes only a workspace id.
func addWorkspaceRefTool(description string, call func(*pyro.Client, context.Context, string) (*pyro.Workspace, error)) func(*mcp.Server, deps, string) {
	return func(s *mcp.Server, d deps, name string) {
		c := d.c
		t := &mcp.Tool{Name: name, Description: description + " " + workspaceFields,
			InputSchema: inputSchema[workspaceRefInput](workspaceRefProps)}
		addTool(s, d, t, handler(func(ctx context.Context, in workspaceRefInput) (*pyro.Workspace, error) {
			return call(c, ctx, in.WorkspaceID)
		}))
	}
}

type workspaceListOutput struct {
	Workspaces []pyro.Workspace `json:"workspaces"`
}

func addWorkspaceList(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "List workspaces, newest activity first, with their state. Use it to find a workspace_id again.",
		InputSchema: inputSchema[listEnvironmentsInput](map[string]prop{})}
	addTool(s, d, t, handler(func(ctx context.Context, _ listEnvironmentsInput) (workspaceListOutput, error) {
		ws, err := c.ListWorkspaces(ctx)
		return workspaceListOutput{Workspaces: ws}, err
	}))
}

type workspaceLogsOutput struct {
	Commands []pyro.WorkspaceLogEntry `json:"commands"`
}

func addWorkspaceLogs(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Show the workspace's command history: each workspace_exec with its sequence number, command, exit_code, timed_out, duration_ms and started_at.",
		InputSchema: inputSchema[workspaceRefInput](workspaceRefProps)}
	addTool(s, d, t, handler(func(ctx context.Context, in workspaceRefInput) (workspaceLogsOutput, error) {
		entries, err := c.WorkspaceLogs(ctx, in.WorkspaceID)
		return workspaceLogsOutput{Commands: entries}, err
	}))
}

func addWorkspaceExec(s *mcp.Server, d deps, name string) {
	c := d.c
	toMin, toMax := rng(1, pyro.MaxTimeoutSeconds)
	t := &mcp.Tool{Name: name,
		Description: "Run a shell command in the workspace, in /workspace, by /bin/sh -lc. Files persist between calls. " +
			"Result: exit_code (124 when it hit timeout_seconds), stdout/stderr (capped at max_output_bytes each; " +
			"stdout_truncated/stderr_truncated say whether output was cut: command_logs with its command_id reads all of it), timed_out, duration_ms, " +
			"sequence (its number in workspace_logs), command_id. For work that may outlast your tool timeout (builds, test suites, servers), " +
			"set background=true: the answer comes at once with command_id and state running; then command_wait, command_logs (by cursor) and command_kill. " +
			"When the command needs a secret (a token, a key), name it in secret_env and use the variable; never put secrets in the command text. " +
			"Secret values show as [REDACTED] in the result.",
		InputSchema: inputSchema[pyro.WorkspaceExecRequest](map[string]prop{
			"workspace_id": workspaceRefProps["workspace_id"],
			"command":      {desc: "Shell command, run by /bin/sh -lc with cwd /workspace.", required: true},
			"timeout_seconds": {desc: fmt.Sprintf("Kill the command (and report timed_out) after this many seconds; default %d, "+
				"none for a background command.", pyro.DefaultTimeoutSeconds), min: toMin, max: toMax},
			"max_output_bytes": outputCapProp,
			"secret_env":       secretEnvProp,
			"env":              {desc: `Environment variables of this command only, e.g. {"CI": "1"}; never for secrets (use secret_env).`},
			"cwd":              {desc: "Directory to run in: relative to /workspace (the default) or absolute under it."},
			"background": {desc: "Start the command and answer at once with its command_id; it runs until it ends, command_kill, or the " +
				"workspace stops or is reset (no timeout unless timeout_seconds is given).", def: false},
		})}
	// The tool's input is the SDK's request itself (its streams are not
	// JSON): one request type from here to the guest (docs/architecture.md).
	addTool(s, d, t, handler(func(ctx context.Context, in pyro.WorkspaceExecRequest) (*pyro.WorkspaceExecResult, error) {
		return c.ExecWorkspace(ctx, in)
	}))
}

type workspaceUpdateInput struct {
	WorkspaceID string            `json:"workspace_id"`
	Name        *string           `json:"name,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	ClearLabels []string          `json:"clear_labels,omitempty"`
	TTLSeconds  *int              `json:"ttl_seconds,omitempty"`
	TTLAction   *string           `json:"ttl_action,omitempty"`
	IdlePause   *int              `json:"idle_pause_seconds,omitempty"`
}

func addWorkspaceUpdate(s *mcp.Server, d deps, name string) {
	c := d.c
	ttlMin, ttlMax := rng(0, 30*24*3600)
	t := &mcp.Tool{Name: name,
		Description: "Rename a workspace, set labels or clear labels; extend its life (ttl_seconds, counted from now), choose what its TTL does (ttl_action) or set its idle pause. " + workspaceFields,
		InputSchema: inputSchema[workspaceUpdateInput](map[string]prop{
			"workspace_id":       workspaceRefProps["workspace_id"],
			"name":               {desc: "New unique name; an empty string clears it; omit to keep it."},
			"labels":             {desc: "Labels to set (KEY: VALUE)."},
			"clear_labels":       {desc: "Label keys to remove."},
			"ttl_seconds":        {desc: "New TTL in seconds, counted from now (0 = never expire); omit to keep it.", min: ttlMin, max: ttlMax},
			"ttl_action":         ttlActionProp,
			"idle_pause_seconds": {desc: idlePauseDesc + " Omit to keep it.", min: ttlMin, max: ttlMax},
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in workspaceUpdateInput) (*pyro.Workspace, error) {
		return c.UpdateWorkspace(ctx, pyro.UpdateWorkspaceRequest{Workspace: in.WorkspaceID, Name: in.Name, Labels: in.Labels, ClearLabels: in.ClearLabels,
			TTLSeconds: in.TTLSeconds, TTLAction: in.TTLAction, IdlePauseSeconds: in.IdlePause})
	}))
}

type reapOutput struct {
	Reaped []string `json:"reaped"`
}

func addReapExpired(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name,
		Description: "Delete every workspace whose ttl_seconds has passed without activity (pyro also does this before every workspace call). Result: reaped (the deleted ids).",
		InputSchema: inputSchema[listEnvironmentsInput](map[string]prop{})}
	addTool(s, d, t, handler(func(ctx context.Context, _ listEnvironmentsInput) (reapOutput, error) {
		ids, err := c.ReapExpired(ctx)
		return reapOutput{Reaped: ids}, err
	}))
}
