// Package supervisor is the per-VM host process of a workspace: it owns the
// VMM and the agent session, and serves a small HTTP API on a unix socket so
// that any number of CLI, SDK and MCP processes can use the VM at once, and
// die, without harming it. It runs as `pyro __supervise SPEC` (the same
// binary, a hidden mode), in its own session.
package supervisor

import (
	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/command"
	"github.com/pyrovm/pyro/internal/network"
)

// Spec is what the supervisor boots and where it keeps its files.
type Spec struct {
	WorkspaceID string `json:"workspace_id"`
	// Backend names the VMM backend that runs the VM (backends.ByName; ""
	// is the default): the supervisor is a process of its own, so the
	// backend its launcher chose crosses over by name.
	Backend     string `json:"backend,omitempty"`
	KernelPath  string `json:"kernel_path"`
	RootfsPath  string `json:"rootfs_path"`
	OverlayPath string `json:"overlay_path"`
	VCPUs       int    `json:"vcpus"`
	MemMiB      int    `json:"mem_mib"`
	Accel       string `json:"accel"`
	GuestTSCKHz int    `json:"guest_tsc_khz,omitempty"` // vmm.Config.GuestTSCKHz
	RunDir      string `json:"run_dir"`                 // VM runtime dirs (reaped like one-shot VMs)
	Socket      string `json:"socket"`                  // the API socket
	InfoPath    string `json:"info_path"`               // Info, written once ready, removed on exit
	// RestoreStatePath, when set (at create only), restores the machine saved
	// in this state file instead of booting it; OverlayPath must then be a
	// private copy of the disk saved with it. A failed restore removes
	// OverlayPath and boots cold with a fresh overlay (Info.RestoreError).
	RestoreStatePath string `json:"restore_state_path,omitempty"`
	// SecretsPath, when set, is the workspace's secrets file (secrets.Save):
	// after every boot the supervisor installs them under secrets.GuestDir,
	// and it redacts their values from everything it answers.
	SecretsPath string `json:"secrets_path,omitempty"`
	// BrokerCAPath, when the secrets include brokered ones, is the
	// workspace's broker CA (certificate and key): the network terminates
	// TLS to their hosts with it and the guest is made to trust it.
	BrokerCAPath string `json:"broker_ca_path,omitempty"`
	// NetworkPolicy is the VM's network (network.Policy; "" = off).
	NetworkPolicy string `json:"network_policy,omitempty"`
	// Egress is the VM's egress allow list at boot (nil: none); PUT
	// /v1/network/rules changes it while the VM runs.
	Egress *network.Rules `json:"egress_rules,omitempty"`
	// PauseDir is where a pause saves the machine (PausedStateFile and,
	// last, PausedMetaFile).
	PauseDir string `json:"pause_dir,omitempty"`
	// LockPath is the workspace's lock: an idle pause takes it first.
	LockPath string `json:"lock_path,omitempty"`
	// IdlePauseSeconds, when > 0, pauses the workspace after that long
	// without a call (PUT /v1/idle changes it).
	IdlePauseSeconds int `json:"idle_pause_seconds,omitempty"`
	// Resume, when set with RestoreStatePath, restores a paused machine:
	// OverlayPath is the very disk it was saved with, which a failed restore
	// keeps (booting it cold) instead of removing it, and these ports are
	// published again. The supervisor removes PauseDir (the used-up saved
	// machine) once it has answered ready.
	Resume *ResumeSpec `json:"resume,omitempty"`
}

// ResumeSpec is what a restore of a paused machine puts back on the host.
type ResumeSpec struct {
	Ports []ServicePorts `json:"ports,omitempty"`
	// NewMachineID gives the restored guest a fresh /etc/machine-id in its
	// hello (a fork: the saved machine is its source's).
	NewMachineID bool `json:"new_machine_id,omitempty"`
}

// IdleRequest is the body of PUT /v1/idle.
type IdleRequest struct {
	IdlePauseSeconds int `json:"idle_pause_seconds"`
}

// NetworkRules is the body of PUT /v1/network/rules: the whole new list
// (Rules nil lifts it).
type NetworkRules struct {
	Rules *network.Rules `json:"rules"`
}

// Ready is the one line a supervisor writes on its ready pipe.
type Ready struct {
	Info  *Info      `json:"info,omitempty"`
	Error *WireError `json:"error,omitempty"`
}

// CommandLogsRequest reads a command's output from cursors.
type CommandLogsRequest struct {
	StdoutCursor int64 `json:"cursor"`
	StderrCursor int64 `json:"stderr_cursor"`
	MaxBytes     int   `json:"max_bytes,omitempty"`
}

// CommandLogs is one read of a command's output.
type CommandLogs struct {
	Command command.Info `json:"command"`
	Stdout  LogChunk     `json:"stdout"`
	Stderr  LogChunk     `json:"stderr"`
}

// LogChunk is one read of one stream (see command.Chunk).
type LogChunk struct {
	Data    []byte `json:"data"`
	Cursor  int64  `json:"cursor"`
	Next    int64  `json:"next_cursor"`
	Dropped int64  `json:"dropped_bytes"`
	More    bool   `json:"more"`
}

// CommandWaitRequest waits for a command to end, at most TimeoutMs.
type CommandWaitRequest struct {
	TimeoutMs int64 `json:"timeout_ms"`
}

// ArchiveResult is the outcome of an archive transfer.
type ArchiveResult struct {
	Entries      int                       `json:"entries"`
	Bytes        int64                     `json:"bytes"`
	Skipped      []agentproto.SkippedEntry `json:"skipped,omitempty"` // special files left out (the first 100)
	SkippedCount int                       `json:"skipped_count,omitempty"`
}

func archiveResult(r *agentproto.ArchiveResult) ArchiveResult {
	return ArchiveResult{Entries: r.Entries, Bytes: r.Bytes, Skipped: r.Skipped, SkippedCount: r.SkippedCount}
}

// ShellOpenRequest opens a PTY shell in the guest.
type ShellOpenRequest struct {
	Cwd  string   `json:"cwd,omitempty"`
	Cols int      `json:"cols"`
	Rows int      `json:"rows"`
	Env  []string `json:"env,omitempty"`
}

// ShellReadRequest reads a shell's output from a cursor.
type ShellReadRequest struct {
	Cursor        int64 `json:"cursor"`
	MaxChars      int   `json:"max_chars,omitempty"`
	Plain         bool  `json:"plain,omitempty"`
	WaitForIdleMs int64 `json:"wait_for_idle_ms,omitempty"`
}

// ShellInputRequest writes input, sends a signal or resizes a shell.
type ShellInputRequest struct {
	Input  string `json:"input,omitempty"`
	Signal string `json:"signal,omitempty"`
	Cols   int    `json:"cols,omitempty"`
	Rows   int    `json:"rows,omitempty"`
}

// ServiceStartRequest starts a service; Command runs under /bin/sh -lc.
type ServiceStartRequest struct {
	Name            string   `json:"name"`
	Command         string   `json:"command"`
	Cwd             string   `json:"cwd,omitempty"`
	Env             []string `json:"env,omitempty"`
	ReadyKind       string   `json:"ready_kind,omitempty"`
	ReadyTarget     string   `json:"ready_target,omitempty"`
	ReadyTimeoutMs  int64    `json:"ready_timeout_ms,omitempty"`
	ReadyIntervalMs int64    `json:"ready_interval_ms,omitempty"`
	// Publish maps guest TCP ports to ports on the host's 127.0.0.1 for the
	// service's life (network policy egress+published-ports only).
	Publish []PortMapping `json:"publish,omitempty"`
}

// PortMapping publishes GuestPort on the host's 127.0.0.1:HostPort (0: a
// free port the host picks).
type PortMapping struct {
	GuestPort int `json:"guest_port"`
	HostPort  int `json:"host_port,omitempty"`
}

// Service is a service as the guest reports it, with the ports the host
// publishes for it (host data: never taken from the guest).
type Service struct {
	agentproto.ServiceInfo
	PublishedPorts []network.Published `json:"published_ports,omitempty"`
}

// ServiceStartResult is the outcome of a start; a failed one carries the
// end of the service's log.
type ServiceStartResult struct {
	Service Service `json:"service"`
	LogTail string  `json:"log_tail,omitempty"`
}
