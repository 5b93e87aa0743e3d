package errdefs

// Stable codes shown to users (CLI --json, SDK, MCP), each defined here and
// only here (package pyro exports them; layout_test checks both). Never
// rename one; the guest agent's wire codes (agentproto) are mapped to these
// at the border.
const (
	CodeInvalidArgument    = "invalid_argument"
	CodeEnvironmentMissing = "environment_missing"
	CodeEnvironmentBuild   = "environment_build_failed"
	CodeHostToolMissing    = "host_tool_missing"
	CodeBootFailed         = "boot_failed"
	CodeTimeout            = "timeout"
	CodeAgentProtocol      = "agent_protocol_error"
	CodeVMMFailed          = "vmm_failed"
	CodeVMMUnsupported     = "vmm_unsupported" // the VMM backend lacks a capability the call needs (vmm.Unsupported)
	CodeCanceled           = "canceled"
	CodeInternal           = "internal"
	CodeNoSpace            = "no_space" // a disk (the workspace's or the host's) is full
	// OCI image environments.
	CodeImageUnsafe    = "image_layer_unsafe"     // a layer entry would escape or abuse the staging tree
	CodeImageCorrupt   = "image_corrupt"          // bytes do not match their digest, unreadable layer
	CodeImageNoShell   = "image_no_shell"         // no /bin/sh: pyro runs every command through it
	CodeImagePlatform  = "image_platform_missing" // no linux/amd64 image in the index
	CodeImagePull      = "image_pull_failed"      // registry unreachable, refused, or answered badly
	CodeRegistryAuth   = "registry_unauthorized"  // the registry wants (other) credentials
	CodePullNotAllowed = "pull_not_allowed"       // the operator did not allow pulling this reference
	CodeImageTooLarge  = "image_too_large"        // the layers unpack to more than the host allows
	// pyro environment artifacts (env push, and pulls of what it pushed).
	CodeImagePush        = "image_push_failed"             // registry unreachable, refused, or answered badly
	CodeArtifactMismatch = "environment_artifact_mismatch" // published by a pyro with another agent, recipe or layout
	// Custom environments.
	CodeBuildStepFailed = "build_step_failed" // a step of "env build" exited non-zero or timed out
	CodeNetworkDisabled = "network_disabled"  // the operator gives guests no network (mcp serve --no-network)
	// Workspaces.
	CodeWorkspaceNotFound     = "workspace_not_found"
	CodeWorkspaceStopped      = "workspace_stopped" // the call needs the VM: start it first
	CodeWorkspaceRunning      = "workspace_running" // the disk tools read a stopped workspace only
	CodeWorkspaceNotPaused    = "workspace_not_paused"
	CodeWorkspacePausing      = "workspace_pausing"          // a pause is under way: retry, which resumes it
	CodeSupervisorOutdated    = "supervisor_outdated"        // the workspace runs under another pyro version's supervisor: stop and start it
	CodeBackendMismatch       = "workspace_backend_mismatch" // made by another VMM backend: use that one (PYRO_BACKEND)
	CodePauseFailed           = "pause_failed"
	CodeForkFailed            = "fork_failed"
	CodeNameTaken             = "name_taken"   // another workspace has that name
	CodeDiskMissing           = "disk_missing" // never started: no disk yet
	CodeDiskUnreadable        = "disk_unreadable"
	CodeSnapshotExists        = "snapshot_exists"
	CodeSnapshotNotFound      = "snapshot_not_found"
	CodeSupervisorUnavailable = "supervisor_unavailable" // the workspace's host process is gone
	CodeSecretsInstallFailed  = "secrets_install_failed"
	CodeSecretNotFound        = "secret_not_found"
	CodeSecretExists          = "secret_exists"
	// Files and transfers.
	CodePathOutsideWorkspace = "path_outside_workspace"
	CodeNotFound             = "not_found"
	CodeAlreadyExists        = "already_exists"
	CodeConflict             = "conflict"
	CodeTooLarge             = "too_large"
	CodeBadArchive           = "bad_archive"
	CodePatchFailed          = "patch_failed"
	CodeNotADirectory        = "not_a_directory"
	CodeNotAFile             = "not_a_file"
	CodeIsSymlink            = "is_symlink"
	CodeHostPathDenied       = "host_path_denied" // outside the host directories the operator granted
	// Commands, shells, services.
	CodeExecFailed       = "exec_failed" // the command could not be started
	CodeStdinFailed      = "stdin_failed"
	CodeAgentUnavailable = "agent_unavailable" // the guest agent cannot be reached
	CodeVMCrashed        = "vm_crashed"
	CodeCommandNotFound  = "command_not_found"
	CodeTooManyCommands  = "too_many_commands"
	CodeInvalidCursor    = "invalid_cursor"
	CodeShellNotFound    = "shell_not_found"
	CodeShellClosed      = "shell_closed"
	CodeTooManyShells    = "too_many_shells"
	CodeServiceNotFound  = "service_not_found"
	CodeServiceExists    = "service_exists"
	CodeServiceFailed    = "service_failed"
	CodePortInUse        = "port_in_use"
	CodeListenFailed     = "listen_failed"
	// Low-level VMs.
	CodeVMNotFound = "vm_not_found"
	CodeVMStopped  = "vm_stopped"
	// Network.
	CodeNetworkRulesNeedNetwork = "network_rules_need_network" // allow rules on a machine without a network
	CodeNoEgressRules           = "no_egress_rules"            // deny on a workspace that has no allow list
	CodeBrokerNeedsNetwork      = "secret_broker_needs_network"
)
