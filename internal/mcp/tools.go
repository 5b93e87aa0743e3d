package mcp

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
)

// Profile selects which tools a server exposes.
type Profile string

const (
	ProfileVMRun         Profile = "vm-run"
	ProfileWorkspaceCore Profile = "workspace-core"
	ProfileWorkspaceFull Profile = "workspace-full"
)

// Profiles lists the valid profiles, narrowest first.
var Profiles = []Profile{ProfileVMRun, ProfileWorkspaceCore, ProfileWorkspaceFull}

// tool is one row of the tool table: its name, title and behaviour hints,
// the profiles it belongs to, and how to register it (schema and handler).
type tool struct {
	name     string
	title    string
	hints    hints
	profiles []Profile
	add      func(s *mcp.Server, d deps, name string)
	// gate, when set, must say yes for the tool to be offered (operator flags).
	gate func(deps) bool
}

// hints are a tool's MCP annotations, set honestly: what the tool does to
// the workspace or host it acts on.
type hints struct {
	readOnly    bool // changes nothing
	destructive bool // may delete or overwrite data (files, processes, a VM)
	idempotent  bool // repeating the call with the same arguments changes nothing more
	openWorld   bool // runs a guest command, which may reach the network when the policy allows
}

var (
	readOnly   = hints{readOnly: true, idempotent: true}
	create     = hints{}                                    // adds something new, never replaces
	idempotent = hints{idempotent: true}                    // sets a state, harmlessly repeated
	overwrite  = hints{destructive: true, idempotent: true} // replaces or discards state
	change     = hints{destructive: true}                   // changes state, not repeatable
	remove     = hints{destructive: true, idempotent: true}
	run        = hints{destructive: true, openWorld: true} // runs an arbitrary command
	runOnce    = hints{openWorld: true}                    // starts a command, adds a service
)

func (h hints) annotations(title string) *mcp.ToolAnnotations {
	return &mcp.ToolAnnotations{Title: title, ReadOnlyHint: h.readOnly, DestructiveHint: &h.destructive,
		IdempotentHint: h.idempotent, OpenWorldHint: &h.openWorld}
}

var allProfiles = []Profile{ProfileVMRun, ProfileWorkspaceCore, ProfileWorkspaceFull}

// tools is the single tool table.
var tools = []tool{
	{name: "vm_run", title: "Run a command in a fresh VM", hints: run, profiles: allProfiles, add: addVMRun},
	{name: "vm_list_environments", title: "List environments", hints: readOnly, profiles: allProfiles, add: addListEnvironments},
	{name: "environment_build", title: "Build a custom environment", hints: runOnce, profiles: coreAndFull, add: addEnvironmentBuild,
		gate: func(d deps) bool { return d.allowBuild }},
	{name: "workspace_create", title: "Create a workspace", hints: create, profiles: coreAndFull, add: addWorkspaceCreate},
	{name: "workspace_list", title: "List workspaces", hints: readOnly, profiles: coreAndFull, add: addWorkspaceList},
	{name: "workspace_status", title: "Show a workspace", hints: readOnly, profiles: coreAndFull, add: addWorkspaceRefTool(
		"Show one workspace's state and sizes.", (*pyro.Client).WorkspaceStatus)},
	{name: "workspace_logs", title: "Show a workspace's command history", hints: readOnly, profiles: coreAndFull, add: addWorkspaceLogs},
	{name: "workspace_exec", title: "Run a command in a workspace", hints: run, profiles: coreAndFull, add: addWorkspaceExec},
	{name: "command_status", title: "Show a command", hints: readOnly, profiles: coreAndFull, add: addCommandStatus},
	{name: "command_logs", title: "Read a command's output", hints: readOnly, profiles: coreAndFull, add: addCommandLogs},
	{name: "command_wait", title: "Wait for a command", hints: readOnly, profiles: coreAndFull, add: addCommandWait},
	{name: "command_kill", title: "Kill a command", hints: remove, profiles: coreAndFull, add: addCommandKill},
	{name: "workspace_sync_push", title: "Copy host files into a workspace", hints: overwrite, profiles: coreAndFull, add: addWorkspaceSyncPush},
	{name: "workspace_file_list", title: "List workspace files", hints: readOnly, profiles: coreAndFull, add: addWorkspaceFileList},
	{name: "workspace_file_read", title: "Read a workspace file", hints: readOnly, profiles: coreAndFull, add: addWorkspaceFileRead},
	{name: "workspace_file_write", title: "Write a workspace file", hints: overwrite, profiles: coreAndFull, add: addWorkspaceFileWrite},
	{name: "workspace_export", title: "Export workspace files to the host", hints: create, profiles: coreAndFull, add: addWorkspaceExport},
	{name: "workspace_diff", title: "Diff a workspace against its baseline", hints: readOnly, profiles: coreAndFull, add: addWorkspaceDiff},
	{name: "workspace_patch_apply", title: "Apply a patch in a workspace", hints: change, profiles: coreAndFull, add: addWorkspacePatchApply},
	{name: "workspace_summary", title: "Summarize a workspace", hints: readOnly, profiles: coreAndFull, add: addWorkspaceSummary},
	{name: "workspace_reset", title: "Reset a workspace", hints: overwrite, profiles: coreAndFull, add: addWorkspaceReset},
	{name: "workspace_stop", title: "Stop a workspace", hints: overwrite, profiles: []Profile{ProfileWorkspaceFull}, add: addWorkspaceRefTool(
		"Flush and power off the workspace's VM, keeping /workspace, history and baseline; workspace_start boots it again.", (*pyro.Client).StopWorkspace)},
	{name: "workspace_start", title: "Start a workspace", hints: idempotent, profiles: []Profile{ProfileWorkspaceFull}, add: addWorkspaceRefTool(
		"Boot a stopped workspace from its kept disk.", (*pyro.Client).StartWorkspace)},
	{name: "workspace_pause", title: "Pause a workspace", hints: idempotent, profiles: fullOnly, add: addWorkspacePause},
	{name: "workspace_resume", title: "Resume a paused workspace", hints: idempotent, profiles: fullOnly, add: addWorkspaceResume},
	{name: "workspace_fork", title: "Fork a workspace", hints: create, profiles: fullOnly, add: addWorkspaceFork},
	{name: "workspace_update", title: "Rename or relabel a workspace", hints: idempotent, profiles: []Profile{ProfileWorkspaceFull}, add: addWorkspaceUpdate},
	{name: "workspace_disk_list", title: "List files on a stopped workspace's disk", hints: readOnly, profiles: fullOnly, add: addWorkspaceDiskList},
	{name: "workspace_disk_read", title: "Read a file from a stopped workspace's disk", hints: readOnly, profiles: fullOnly, add: addWorkspaceDiskRead},
	{name: "workspace_disk_export", title: "Export a stopped workspace's disk image", hints: create, profiles: fullOnly, add: addWorkspaceDiskExport},
	{name: "snapshot_create", title: "Snapshot a workspace", hints: create, profiles: fullOnly, add: addSnapshotCreate},
	{name: "snapshot_list", title: "List a workspace's snapshots", hints: readOnly, profiles: fullOnly, add: addSnapshotList},
	{name: "snapshot_delete", title: "Delete a snapshot", hints: remove, profiles: fullOnly, add: addSnapshotDelete},
	{name: "shell_open", title: "Open a shell", hints: create, profiles: fullOnly, add: addShellOpen},
	{name: "shell_read", title: "Read shell output", hints: readOnly, profiles: fullOnly, add: addShellRead},
	{name: "shell_write", title: "Type into a shell", hints: run, profiles: fullOnly, add: addShellWrite},
	{name: "shell_signal", title: "Signal a shell's foreground process", hints: change, profiles: fullOnly, add: addShellSignal},
	{name: "shell_resize", title: "Resize a shell", hints: idempotent, profiles: fullOnly, add: addShellResize},
	{name: "shell_close", title: "Close a shell", hints: remove, profiles: fullOnly, add: addShellClose},
	{name: "service_start", title: "Start a service", hints: runOnce, profiles: fullOnly, add: addServiceStart},
	{name: "service_list", title: "List services", hints: readOnly, profiles: fullOnly, add: addServiceList},
	{name: "service_status", title: "Show a service", hints: readOnly, profiles: fullOnly, add: addServiceStatus},
	{name: "service_logs", title: "Read a service's log", hints: readOnly, profiles: fullOnly, add: addServiceLogs},
	{name: "service_stop", title: "Stop a service", hints: remove, profiles: fullOnly, add: addServiceStop},
	{name: "vm_reap_expired", title: "Delete expired workspaces", hints: remove, profiles: fullOnly, add: addReapExpired},
	{name: "vm_create", title: "Create a low-level VM", hints: create, profiles: fullOnly, add: addVMCreate},
	{name: "vm_list", title: "List low-level VMs", hints: readOnly, profiles: fullOnly, add: addVMList},
	{name: "vm_start", title: "Start a low-level VM", hints: idempotent, profiles: fullOnly, add: addVMRefTool("Low-level: boot a created or stopped VM. "+vmFields, (*pyro.Client).StartVM)},
	{name: "vm_exec", title: "Run a command in a low-level VM, then delete it", hints: run, profiles: fullOnly, add: addVMExec},
	{name: "vm_status", title: "Show a low-level VM", hints: readOnly, profiles: fullOnly, add: addVMRefTool("Low-level: show one VM. "+vmFields, (*pyro.Client).VMStatus)},
	{name: "vm_stop", title: "Stop a low-level VM", hints: overwrite, profiles: fullOnly, add: addVMRefTool("Low-level: power a VM off, keeping its disk. "+vmFields, (*pyro.Client).StopVM)},
	{name: "vm_delete", title: "Delete a low-level VM", hints: remove, profiles: fullOnly, add: addVMRefTool("Low-level: delete a VM and its host state. "+vmFields, (*pyro.Client).DeleteVM)},
	{name: "vm_network_info", title: "Show a low-level VM's network", hints: readOnly, profiles: fullOnly, add: addVMRefTool("Low-level: a VM's network: network_policy (off: no network device), state, and while it runs "+
		"guest_address, gateway, dns and mac.", (*pyro.Client).VMNetworkInfo)},
	{name: "workspace_network_show", title: "Show a workspace's egress rules", hints: readOnly, profiles: coreAndFull, add: addWorkspaceNetworkShow},
	{name: "workspace_network_log", title: "Show refused connections", hints: readOnly, profiles: coreAndFull, add: addWorkspaceNetworkLog},
	{name: "workspace_network_update", title: "Change a workspace's egress rules", hints: idempotent, profiles: coreAndFull, add: addWorkspaceNetworkUpdate,
		gate: func(d deps) bool { return d.netChanges }},
	{name: "workspace_delete", title: "Delete a workspace", hints: remove, profiles: coreAndFull, add: addWorkspaceRefTool(
		"Delete the workspace: its VM and all its files are gone for good.", (*pyro.Client).DeleteWorkspace)},
}

// tableRows indexes the table by name (built at run time: the table's add
// functions look their rows up, which a package-level map would make an
// initialization cycle).
func tableRows() map[string]tool {
	m := make(map[string]tool, len(tools))
	for _, t := range tools {
		m[t.name] = t
	}
	return m
}

// ToolNames returns the tools of a profile (or of cfg.Mode, when set) a
// server offers with cfg's operator flags, in table order.
func ToolNames(p Profile, cfg Config) []string {
	d := deps{noNetwork: cfg.NoNetwork, netChanges: cfg.AllowNetworkChanges, allowBuild: cfg.AllowBuild}
	cfg.Profile = p
	var names []string
	for _, t := range tools {
		if cfg.offers(t) && (t.gate == nil || t.gate(d)) {
			names = append(names, t.name)
		}
	}
	return names
}

// MCP results are sized for hosts, which cap what a tool may return (Claude
// Code: 25,000 tokens): 16 KiB per stream by default, 1 MiB at most.
const (
	mcpOutputBytes    = 16 << 10
	mcpMaxOutputBytes = 1 << 20
)

var outputCapProp = func() prop {
	lo, hi := rng(1024, mcpMaxOutputBytes)
	return prop{desc: "Cap for stdout and for stderr, each, in bytes. Output over the cap keeps its first three quarters " +
		"and its last quarter around a line \"[... pyro: N bytes omitted ...]\" (and *_truncated is true). For all of a " +
		"long output, redirect it to a file in the command and read that in parts.", def: mcpOutputBytes, min: lo, max: hi}
}()

// vmRunInput is vm_run's arguments.
type vmRunInput struct {
	Environment    string        `json:"environment,omitempty"`
	Command        string        `json:"command"`
	VCPUCount      int           `json:"vcpu_count,omitempty"`
	MemMiB         int           `json:"mem_mib,omitempty"`
	TimeoutSeconds int           `json:"timeout_seconds,omitempty"`
	MaxOutputBytes int64         `json:"max_output_bytes,omitempty"`
	Network        bool          `json:"network,omitempty"`
	AllowHosts     []string      `json:"allow_hosts,omitempty"`
	AllowCIDRs     []string      `json:"allow_cidrs,omitempty"`
	AllowPresets   []string      `json:"allow_presets,omitempty"`
	Secrets        []secretInput `json:"secrets,omitempty"`
}

func addVMRun(s *mcp.Server, d deps, name string) {
	c := d.c
	cpuMin, cpuMax := rng(pyro.MinVCPUCount, pyro.MaxVCPUCount)
	memMin, memMax := rng(pyro.MinMemMiB, pyro.MaxMemMiB)
	toMin, toMax := rng(1, pyro.MaxTimeoutSeconds)
	t := &mcp.Tool{
		Name: name,
		Description: "Run one shell command in a fresh, disposable Linux microVM and return its output and exit code. " +
			"The VM is destroyed afterwards, so nothing persists between calls: use vm_run for one-off commands " +
			"(checks, builds, scripts), and the workspace_* tools when several steps must share files. " +
			"Result: exit_code (the command's; 124 when it hit timeout_seconds), stdout and stderr (each capped at " +
			"max_output_bytes; stdout_truncated/stderr_truncated say whether output was cut), timed_out, " +
			"duration_ms (whole call), boot_ms (VM boot), execution_mode (how the VM ran, e.g. guest_qemu_tcg), " +
			"blocked_connections (with network: the DNS names and connections refused, each with its reason).",
		InputSchema: inputSchema[vmRunInput](map[string]prop{
			"environment":      {desc: environmentDesc, def: pyro.DefaultEnvironment},
			"command":          {desc: "Shell command, run by /bin/sh -lc in the guest as root, cwd /.", required: true},
			"vcpu_count":       {desc: "Virtual CPUs.", def: pyro.DefaultVCPUCount, min: cpuMin, max: cpuMax},
			"mem_mib":          {desc: "Guest memory in MiB.", def: pyro.DefaultMemMiB, min: memMin, max: memMax},
			"timeout_seconds":  {desc: "Kill the command (and report timed_out) after this many seconds.", def: pyro.DefaultTimeoutSeconds, min: toMin, max: toMax},
			"max_output_bytes": outputCapProp,
			"network": {desc: "Give the guest outbound network access (NAT; never this host, its loopback services or " +
				"link-local/metadata addresses). Off by default: the guest has no network device.", def: false},
			"allow_hosts":   allowProps["allow_hosts"],
			"allow_cidrs":   allowProps["allow_cidrs"],
			"allow_presets": allowProps["allow_presets"],
			"secrets":       brokeredSecretsProp,
		}),
	}
	addTool(s, d, t, handler(func(ctx context.Context, in vmRunInput) (*pyro.RunResult, error) {
		if in.Network {
			if err := d.checkNetwork("on"); err != nil {
				return nil, err
			}
		}
		if in.Environment == "" {
			in.Environment = pyro.DefaultEnvironment
		}
		return c.Run(ctx, pyro.RunRequest{
			Environment: in.Environment, Command: in.Command, VCPUCount: in.VCPUCount,
			MemMiB: in.MemMiB, TimeoutSeconds: in.TimeoutSeconds, MaxOutputBytes: in.MaxOutputBytes, Network: in.Network,
			EgressRules: pyro.EgressRules{AllowHosts: in.AllowHosts, AllowCIDRs: in.AllowCIDRs, AllowPresets: in.AllowPresets},
			Secrets:     brokeredSecrets(in.Secrets),
		})
	}))
}

type listEnvironmentsInput struct{}

type listEnvironmentsOutput struct {
	Environments []pyro.EnvironmentInfo `json:"environments"`
}

func addListEnvironments(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{
		Name: name,
		Description: "List the environments (guest OS images) pyro can boot: the catalog (source debian, with packages; " +
			"one not installed is built on first use, which takes minutes) and the OCI images pulled here (source oci, " +
			"with their digest) and the custom environments built here (source build, with their base and steps). Any of these names works as environment.",
		InputSchema: inputSchema[listEnvironmentsInput](map[string]prop{}),
	}
	addTool(s, d, t, handler(func(ctx context.Context, _ listEnvironmentsInput) (listEnvironmentsOutput, error) {
		envs, err := c.ListEnvironments(ctx)
		return listEnvironmentsOutput{Environments: envs}, err
	}))
}

// environmentDesc describes the environment argument: a catalog name, or an
// image reference (not a closed enum: images are open-ended).
const environmentDesc = "Environment to boot: a catalog name (debian:12, debian:12-base, debian:12-build), " +
	"or an OCI image reference already pulled or allowed by the operator (e.g. python:3.12-slim, " +
	"ghcr.io/org/img:tag, registry.example.com/team/img@sha256:...), or a custom environment built here (source build). The image must have /bin/sh. " +
	"vm_list_environments lists what is available locally; an image not in it is pulled on first use " +
	"only if the server allows it (otherwise the error names the local environments). oci-layout:DIR and " +
	"docker-archive:FILE name host paths, allowed only under the directories this server grants (see seed_path)."
