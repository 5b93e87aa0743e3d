package mcp

import (
	"context"
	"slices"

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

// tool is one row of the tool table: its name, description, the profiles it
// belongs to, and how to register it (schema and handler) on a server.
type tool struct {
	name     string
	profiles []Profile
	add      func(s *mcp.Server, d deps, name string)
}

var allProfiles = []Profile{ProfileVMRun, ProfileWorkspaceCore, ProfileWorkspaceFull}

// tools is the single tool table.
var tools = []tool{
	{name: "vm_run", profiles: allProfiles, add: addVMRun},
	{name: "vm_list_environments", profiles: allProfiles, add: addListEnvironments},
	{name: "workspace_create", profiles: coreAndFull, add: addWorkspaceCreate},
	{name: "workspace_list", profiles: coreAndFull, add: addWorkspaceList},
	{name: "workspace_status", profiles: coreAndFull, add: addWorkspaceRefTool(
		"Show one workspace's state and sizes.", true, (*pyro.Client).WorkspaceStatus)},
	{name: "workspace_logs", profiles: coreAndFull, add: addWorkspaceLogs},
	{name: "workspace_exec", profiles: coreAndFull, add: addWorkspaceExec},
	{name: "workspace_sync_push", profiles: coreAndFull, add: addWorkspaceSyncPush},
	{name: "workspace_file_list", profiles: coreAndFull, add: addWorkspaceFileList},
	{name: "workspace_file_read", profiles: coreAndFull, add: addWorkspaceFileRead},
	{name: "workspace_file_write", profiles: coreAndFull, add: addWorkspaceFileWrite},
	{name: "workspace_export", profiles: coreAndFull, add: addWorkspaceExport},
	{name: "workspace_diff", profiles: coreAndFull, add: addWorkspaceDiff},
	{name: "workspace_patch_apply", profiles: coreAndFull, add: addWorkspacePatchApply},
	{name: "workspace_summary", profiles: coreAndFull, add: addWorkspaceSummary},
	{name: "workspace_reset", profiles: coreAndFull, add: addWorkspaceReset},
	{name: "workspace_stop", profiles: []Profile{ProfileWorkspaceFull}, add: addWorkspaceRefTool(
		"Flush and power off the workspace's VM, keeping /workspace, history and baseline; workspace_start boots it again.", false, (*pyro.Client).StopWorkspace)},
	{name: "workspace_start", profiles: []Profile{ProfileWorkspaceFull}, add: addWorkspaceRefTool(
		"Boot a stopped workspace from its kept disk.", false, (*pyro.Client).StartWorkspace)},
	{name: "workspace_update", profiles: []Profile{ProfileWorkspaceFull}, add: addWorkspaceUpdate},
	{name: "workspace_disk_list", profiles: fullOnly, add: addWorkspaceDiskList},
	{name: "workspace_disk_read", profiles: fullOnly, add: addWorkspaceDiskRead},
	{name: "workspace_disk_export", profiles: fullOnly, add: addWorkspaceDiskExport},
	{name: "snapshot_create", profiles: fullOnly, add: addSnapshotCreate},
	{name: "snapshot_list", profiles: fullOnly, add: addSnapshotList},
	{name: "snapshot_delete", profiles: fullOnly, add: addSnapshotDelete},
	{name: "shell_open", profiles: fullOnly, add: addShellOpen},
	{name: "shell_read", profiles: fullOnly, add: addShellRead},
	{name: "shell_write", profiles: fullOnly, add: addShellWrite},
	{name: "shell_signal", profiles: fullOnly, add: addShellSignal},
	{name: "shell_resize", profiles: fullOnly, add: addShellResize},
	{name: "shell_close", profiles: fullOnly, add: addShellClose},
	{name: "service_start", profiles: fullOnly, add: addServiceStart},
	{name: "service_list", profiles: fullOnly, add: addServiceList},
	{name: "service_status", profiles: fullOnly, add: addServiceStatus},
	{name: "service_logs", profiles: fullOnly, add: addServiceLogs},
	{name: "service_stop", profiles: fullOnly, add: addServiceStop},
	{name: "vm_reap_expired", profiles: fullOnly, add: addReapExpired},
	{name: "vm_create", profiles: fullOnly, add: addVMCreate},
	{name: "vm_start", profiles: fullOnly, add: addVMRefTool("Low-level: boot a created or stopped VM. "+vmFields, (*pyro.Client).StartVM)},
	{name: "vm_exec", profiles: fullOnly, add: addVMExec},
	{name: "vm_status", profiles: fullOnly, add: addVMRefTool("Low-level: show one VM. "+vmFields, (*pyro.Client).VMStatus)},
	{name: "vm_stop", profiles: fullOnly, add: addVMRefTool("Low-level: power a VM off, keeping its disk. "+vmFields, (*pyro.Client).StopVM)},
	{name: "vm_delete", profiles: fullOnly, add: addVMRefTool("Low-level: delete a VM and its host state. "+vmFields, (*pyro.Client).DeleteVM)},
	{name: "vm_network_info", profiles: fullOnly, add: addVMRefTool("Low-level: a VM's network: network_policy (off: no network device), state, and while it runs "+
		"guest_address, gateway, dns and mac.", (*pyro.Client).VMNetworkInfo)},
	{name: "workspace_delete", profiles: coreAndFull, add: addWorkspaceRefTool(
		"Delete the workspace: its VM and all its files are gone for good.", false, (*pyro.Client).DeleteWorkspace)},
}

// ToolNames returns the tools of a profile, in table order.
func ToolNames(p Profile) []string {
	var names []string
	for _, t := range tools {
		if slices.Contains(t.profiles, p) {
			names = append(names, t.name)
		}
	}
	return names
}

// vmRunInput is vm_run's arguments.
type vmRunInput struct {
	Environment    string `json:"environment,omitempty"`
	Command        string `json:"command"`
	VCPUCount      int    `json:"vcpu_count,omitempty"`
	MemMiB         int    `json:"mem_mib,omitempty"`
	TimeoutSeconds int    `json:"timeout_seconds,omitempty"`
	MaxOutputBytes int64  `json:"max_output_bytes,omitempty"`
	Network        bool   `json:"network,omitempty"`
}

func addVMRun(s *mcp.Server, d deps, name string) {
	c := d.c
	cpuMin, cpuMax := rng(pyro.MinVCPUCount, pyro.MaxVCPUCount)
	memMin, memMax := rng(pyro.MinMemMiB, pyro.MaxMemMiB)
	toMin, toMax := rng(1, pyro.MaxTimeoutSeconds)
	outMin, outMax := rng(0, pyro.MaxMaxOutputBytes)
	t := &mcp.Tool{
		Name: name,
		Description: "Run one shell command in a fresh, disposable Linux microVM and return its output and exit code. " +
			"The VM is destroyed afterwards, so nothing persists between calls: use vm_run for one-off commands " +
			"(checks, builds, scripts), and the workspace_* tools when several steps must share files. " +
			"Result: exit_code (the command's; 124 when it hit timeout_seconds), stdout and stderr (each capped at " +
			"max_output_bytes; stdout_truncated/stderr_truncated say whether output was cut), timed_out, " +
			"duration_ms (whole call), boot_ms (VM boot), execution_mode (how the VM ran, e.g. guest_qemu_tcg).",
		InputSchema: inputSchema[vmRunInput](map[string]prop{
			"environment":      {desc: environmentDesc, def: pyro.DefaultEnvironment},
			"command":          {desc: "Shell command, run by /bin/sh -lc in the guest as root, cwd /.", required: true},
			"vcpu_count":       {desc: "Virtual CPUs.", def: pyro.DefaultVCPUCount, min: cpuMin, max: cpuMax},
			"mem_mib":          {desc: "Guest memory in MiB.", def: pyro.DefaultMemMiB, min: memMin, max: memMax},
			"timeout_seconds":  {desc: "Kill the command (and report timed_out) after this many seconds.", def: pyro.DefaultTimeoutSeconds, min: toMin, max: toMax},
			"max_output_bytes": {desc: "Cap for stdout and for stderr, each, in bytes.", def: pyro.DefaultMaxOutputBytes, min: outMin, max: outMax},
			"network": {desc: "Give the guest outbound network access (NAT; never this host, its loopback services or " +
				"link-local/metadata addresses). Off by default: the guest has no network device.", def: false},
		}),
	}
	mcp.AddTool(s, t, handler(func(ctx context.Context, in vmRunInput) (*pyro.RunResult, error) {
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
			"with their digest). Any of these names works as environment.",
		InputSchema: inputSchema[listEnvironmentsInput](map[string]prop{}),
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}
	mcp.AddTool(s, t, func(ctx context.Context, _ *mcp.CallToolRequest, _ listEnvironmentsInput) (*mcp.CallToolResult, listEnvironmentsOutput, error) {
		envs, err := c.ListEnvironments(ctx)
		if err != nil {
			return nil, listEnvironmentsOutput{}, toolError(err)
		}
		return nil, listEnvironmentsOutput{Environments: envs}, nil
	})
}

// environmentDesc describes the environment argument: a catalog name, or an
// image reference (not a closed enum: images are open-ended).
const environmentDesc = "Environment to boot: a catalog name (debian:12, debian:12-base, debian:12-build), " +
	"or an OCI image reference already pulled or allowed by the operator (e.g. python:3.12-slim, " +
	"ghcr.io/org/img:tag, registry.example.com/team/img@sha256:...). The image must have /bin/sh. " +
	"vm_list_environments lists what is available locally; an image not in it is pulled on first use " +
	"only if the server allows it (otherwise the error names the local environments)."
