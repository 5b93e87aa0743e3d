package pyro

import (
	"cmp"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/archive"
	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/hostpath"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/secrets"
	"github.com/pyrovm/pyro/internal/supervisor"
	"github.com/pyrovm/pyro/internal/vm"
	"github.com/pyrovm/pyro/internal/vmm"
	"github.com/pyrovm/pyro/internal/workspace"
)

// CreateWorkspaceRequest describes a new persistent workspace.
type CreateWorkspaceRequest struct {
	Environment string `json:"environment"`
	// EnvFile is an environment file (see EnvironmentFile) whose custom
	// environment the workspace runs in, built first when needed. With no
	// Environment and no EnvFile, a seed directory's own ProjectEnvFile is used.
	EnvFile  string `json:"env_file,omitempty"`
	SeedPath string `json:"seed_path,omitempty"` // host dir, .tar, .tar.gz or .tgz
	// SeedGitTracked seeds only the Git-tracked files of the checkout at
	// SeedPath; unreadable or special files are skipped and listed.
	SeedGitTracked bool              `json:"seed_git_tracked,omitempty"`
	Name           string            `json:"name,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	VCPUCount      int               `json:"vcpu_count,omitempty"`
	MemMiB         int               `json:"mem_mib,omitempty"`
	TTLSeconds     int               `json:"ttl_seconds,omitempty"` // 0 = no expiry
	// TTLAction is what happens when the TTL passes: "delete" (default)
	// or "pause" (the next call resumes it).
	TTLAction string `json:"ttl_action,omitempty"`
	// IdlePauseSeconds, when > 0, pauses the workspace after that many
	// seconds without a call; the next call resumes it transparently.
	IdlePauseSeconds int `json:"idle_pause_seconds,omitempty"`
	// Secrets are kept on the host (owner-only) for the workspace's life,
	// appear in the guest only as files under /run/pyro-secrets and in the
	// environment of calls that name them (SecretEnv), and are replaced by
	// [REDACTED] in everything pyro returns.
	Secrets []WorkspaceSecret `json:"secrets,omitempty"`
	// NetworkPolicy is the guest's network for the workspace's life: "off"
	// (the default: no network device), "egress" (outbound NAT, never to
	// the host itself, its loopback services or link-local addresses) or
	// "egress+published-ports" (also services may publish TCP ports on the
	// host's 127.0.0.1).
	NetworkPolicy string `json:"network_policy,omitempty"`
	// EgressRules, when any is given, allow only what they name (needs
	// network_policy egress or egress+published-ports); see EgressRules.
	EgressRules
}

// WorkspaceSecret is one secret given at create: a value, or a host file
// whose content is the value.
type WorkspaceSecret struct {
	Name     string `json:"name"`
	Value    string `json:"value,omitempty"`
	FilePath string `json:"file_path,omitempty"`
	// BrokerHosts, when set, broker the secret instead of delivering it:
	// the guest never holds the value, only a placeholder (SecretInfo's
	// Placeholder, and what SecretEnv sets), and the egress point puts the
	// value in place of the placeholder in the headers of HTTP and HTTPS
	// requests to these hosts only ("api.github.com", "*.example.com").
	// Needs a network. See docs/secret-broker.md.
	BrokerHosts []string `json:"broker_hosts,omitempty"`
}

// SecretInfo names a workspace's secret; its value is never shown.
type SecretInfo struct {
	Name string `json:"name"`
	// Source is where the value came from: "value" (given inline) or
	// "file" (read from a host file at create).
	Source string `json:"source"`
	// BrokerHosts and Placeholder, of a brokered secret: the hosts pyro's
	// network puts the value into requests for, and what the guest sees
	// instead of the value.
	BrokerHosts []string `json:"broker_hosts,omitempty"`
	Placeholder string   `json:"placeholder,omitempty"`
}

func toSecretInfo(s secrets.Info) SecretInfo { return SecretInfo(s) }

// Workspace is a workspace as every face reports it.
type Workspace struct {
	WorkspaceID string            `json:"workspace_id"`
	Name        string            `json:"name,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Environment string            `json:"environment"`
	// Backend is the VMM backend that made its disk and runs it ("qemu");
	// only that backend can start it (PYRO_BACKEND, WithBackend).
	Backend    string `json:"backend"`
	State      string `json:"state"` // running, paused or stopped
	VCPUCount  int    `json:"vcpu_count"`
	MemMiB     int    `json:"mem_mib"`
	TTLSeconds int    `json:"ttl_seconds"`
	TTLAction  string `json:"ttl_action"` // delete or pause
	// IdlePauseSeconds: the workspace pauses itself after that long
	// without a call (0: never).
	IdlePauseSeconds int `json:"idle_pause_seconds,omitempty"`
	// PausedAt and PausedStateBytes describe the saved machine of a paused
	// workspace.
	PausedAt         *time.Time    `json:"paused_at,omitempty"`
	PausedStateBytes int64         `json:"paused_state_bytes,omitempty"`
	CreatedAt        time.Time     `json:"created_at"`
	LastActivityAt   time.Time     `json:"last_activity_at"`
	ExpiresAt        *time.Time    `json:"expires_at,omitempty"`
	CommandCount     int           `json:"command_count"`
	SeedEntries      int           `json:"seed_entries"`
	SeedBytes        int64         `json:"seed_bytes"`
	SeedSkipped      []SkippedFile `json:"seed_skipped,omitempty"`   // host files left out of the seed, and why
	ExecutionMode    string        `json:"execution_mode,omitempty"` // while running
	BootMs           int64         `json:"boot_ms,omitempty"`        // of the current boot
	SnapshotCount    int           `json:"snapshot_count"`
	Secrets          []SecretInfo  `json:"secrets,omitempty"` // names only
	NetworkPolicy    string        `json:"network_policy"`    // off, egress or egress+published-ports
	// Egress is the allow list: nil when the network (if any) is not
	// restricted by rules.
	Egress *EgressRules `json:"egress_rules,omitempty"`
	// ResetFrom is set in the answer to a reset: "baseline" or the
	// snapshot's name.
	ResetFrom string `json:"reset_from,omitempty"`
	// Commands are the workspace's background commands and its newest
	// finished commands (while it runs; see Command).
	Commands []WorkspaceCommand `json:"commands,omitempty"`
}

// WorkspaceExecRequest is one command in a workspace's /workspace.
type WorkspaceExecRequest struct {
	Workspace      string `json:"workspace_id"` // id or name
	Command        string `json:"command"`
	TimeoutSeconds int    `json:"timeout_seconds,omitempty"`
	MaxOutputBytes int64  `json:"max_output_bytes,omitempty"`
	// SecretEnv sets secrets as environment variables of this command
	// only: secret name -> variable name ("" = the secret's name).
	SecretEnv map[string]string `json:"secret_env,omitempty"`
	// Env sets more environment variables of this command only (not for
	// secrets: their values are not redacted).
	Env map[string]string `json:"env,omitempty"`
	// Cwd is the command's directory: relative to /workspace (default) or
	// absolute under it.
	Cwd string `json:"cwd,omitempty"`
	// Background starts the command and answers at once with its
	// command_id (state running): follow it with CommandLogs, WaitCommand
	// and KillCommand. It runs on after the caller is gone, without a
	// timeout unless TimeoutSeconds is given, until it ends, is killed, or
	// the workspace stops or is reset.
	Background bool `json:"background,omitempty"`

	// Stdout and Stderr, when set, get the command's output as it comes
	// (all of it; the result still holds the capped copy). Stdin, when
	// set, is the command's stdin until EOF. Not with Background.
	Stdout io.Writer `json:"-"`
	Stderr io.Writer `json:"-"`
	Stdin  io.Reader `json:"-"`
}

// WorkspaceExecResult is a finished workspace command. DurationMs is the
// command's own (in the guest).
type WorkspaceExecResult struct {
	WorkspaceID string `json:"workspace_id"`
	Command     string `json:"command"`
	Sequence    int    `json:"sequence"` // its number in the workspace's history
	ExecOutput
	// CommandID names the command while the workspace keeps it (see
	// WorkspaceCommand): CommandLogs reads its whole output by cursor, beyond the
	// capped copy here.
	CommandID string `json:"command_id,omitempty"`
	// State is "running" in the answer to a background start (the other
	// fields are then zero), else how it ended (see WorkspaceCommand.State).
	State string `json:"state"`
}

// SkippedFile is a file left out of a seed, transfer, snapshot or diff, and
// why (a special file no archive carries, or an unreadable host file).
type SkippedFile struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

func toSkipped(s archive.Skipped) SkippedFile { return SkippedFile(s) }

// WorkspaceLogEntry is one finished foreground command of a workspace's
// history.
type WorkspaceLogEntry struct {
	Sequence   int       `json:"sequence"` // 1 for the first command
	Command    string    `json:"command"`
	ExitCode   int       `json:"exit_code"`
	TimedOut   bool      `json:"timed_out"` // killed at its timeout (exit code 124)
	DurationMs int64     `json:"duration_ms"`
	StartedAt  time.Time `json:"started_at"`
}

func toLogEntry(e workspace.HistoryEntry) WorkspaceLogEntry { return WorkspaceLogEntry(e) }

// WithPyroBinary sets the pyro binary that runs workspace supervisors
// (default PYRO_BIN, else the running executable when it is pyro, else pyro
// beside the guest agent, else pyro on PATH). pyro-supervisor beside that
// binary runs them when it is there (smaller: less host memory per
// workspace), else the pyro binary itself.
func WithPyroBinary(path string) Option { return func(c *Client) { c.pyroBin = path } }

// workspaces is the manager for a call that targets workspaces by id or
// name. What dead pyro processes left half done, and expired workspaces, go
// before anything else looks at them: every workspace when the last pass is
// older than a couple of seconds, else the ones the call resolves.
func (c *Client) workspaces(ctx context.Context) *workspace.Manager {
	return c.tidied(ctx, (*workspace.Manager).TidyDue)
}

// allWorkspaces is the manager for a call that looks at every workspace:
// it tidies them all first.
func (c *Client) allWorkspaces(ctx context.Context) *workspace.Manager {
	return c.tidied(ctx, (*workspace.Manager).Tidy)
}

func (c *Client) tidied(ctx context.Context, tidy func(*workspace.Manager, context.Context, time.Time) ([]string, []string, error)) *workspace.Manager {
	m := workspace.NewManager(filepath.Join(c.stateDir, "workspaces"), c.supervisorBinary(), c.backend, c.log)
	recovered, expired, err := tidy(m, ctx, time.Now())
	if len(recovered) > 0 || len(expired) > 0 || err != nil {
		c.log.Info("tidied workspaces", "recovered", recovered, "expired", expired, "err", err)
	}
	return m
}

// ReapExpired deletes every workspace whose TTL has passed and returns their ids.
// Every workspace call does this first; call it to do it on demand.
func (c *Client) ReapExpired(ctx context.Context) ([]string, error) {
	m := workspace.NewManager(filepath.Join(c.stateDir, "workspaces"), c.supervisorBinary(), c.backend, c.log)
	reaped, err := m.ReapExpired(ctx, time.Now())
	reaped = append(append([]string{}, reaped...), c.reapExpiredMachines(ctx)...)
	return reaped, err
}

// UpdateWorkspaceRequest changes a workspace's name and labels.
type UpdateWorkspaceRequest struct {
	Workspace   string            `json:"workspace_id"`
	Name        *string           `json:"name,omitempty"` // nil keeps; "" clears
	Labels      map[string]string `json:"labels,omitempty"`
	ClearLabels []string          `json:"clear_labels,omitempty"`
	// TTLSeconds sets the TTL counted from now (extends or shortens the
	// workspace's life; 0 = no expiry); nil keeps it.
	TTLSeconds *int `json:"ttl_seconds,omitempty"`
	// TTLAction sets what the TTL does: "delete" or "pause"; nil keeps it.
	TTLAction *string `json:"ttl_action,omitempty"`
	// IdlePauseSeconds sets the idle pause (0 = off); nil keeps it.
	IdlePauseSeconds *int `json:"idle_pause_seconds,omitempty"`
}

// UpdateWorkspace sets the name, sets labels and clears labels, and changes
// the TTL (counted from now), its action and the idle pause.
func (c *Client) UpdateWorkspace(ctx context.Context, req UpdateWorkspaceRequest) (*Workspace, error) {
	life := workspace.Lifecycle{TTLSeconds: req.TTLSeconds, TTLAction: req.TTLAction, IdlePauseSeconds: req.IdlePauseSeconds}
	if err := workspace.ValidateLifecycle(life); err != nil {
		return nil, err
	}
	m := c.workspaces(ctx)
	r, err := m.Update(ctx, req.Workspace, req.Name, req.Labels, req.ClearLabels)
	if err != nil {
		return nil, err
	}
	if life != (workspace.Lifecycle{}) {
		if r, err = m.UpdateLifecycle(ctx, r.ID, life); err != nil {
			return nil, err
		}
	}
	w := c.toWorkspace(r, nil)
	return &w, nil
}

// supervisorBinary is what runs workspace supervisors: pyro-supervisor
// beside the pyro binary, else that pyro binary (supervisor.Binary).
func (c *Client) supervisorBinary() string { return supervisor.Binary(c.pyroBinary()) }

func (c *Client) pyroBinary() string {
	if c.pyroBin != "" {
		return c.pyroBin
	}
	if p := os.Getenv("PYRO_BIN"); p != "" {
		return p
	}
	if exe, err := os.Executable(); err == nil && (filepath.Base(exe) == "pyro" || filepath.Base(exe) == "pyro-full") {
		return exe // pyro-full: the complete CLI pyro hands its calls to
	}
	if c.agentPath != "" {
		if p := filepath.Join(filepath.Dir(c.agentPath), "pyro"); fileExists(p) {
			return p
		}
	}
	if p, err := exec.LookPath("pyro"); err == nil {
		return p
	}
	return "pyro"
}

// CreateWorkspace boots a persistent workspace, seeds /workspace from
// SeedPath before it returns, and records that content as the baseline.
func (c *Client) CreateWorkspace(ctx context.Context, req CreateWorkspaceRequest) (*Workspace, error) {
	if req.VCPUCount == 0 {
		req.VCPUCount = DefaultVCPUCount
	}
	if req.MemMiB == 0 {
		req.MemMiB = DefaultMemMiB
	}
	if err := c.resolveEnvFile(ctx, &req); err != nil {
		return nil, err
	}
	if err := validateCreate(req); err != nil {
		return nil, err
	}
	secretSet, err := c.loadSecrets(req.Secrets, req.NetworkPolicy)
	if err != nil {
		return nil, err
	}
	var seed *hostpath.Source
	if req.SeedPath != "" {
		if seed, err = c.host.OpenSource(req.SeedPath); err != nil {
			return nil, seedErr(err)
		}
		defer seed.Close()
	}
	e, err := c.ensureEnv(ctx, req.Environment)
	if err != nil {
		return nil, err
	}
	c.reapOrphans()
	verdict := c.accelFor(ctx, e.KernelPath)
	var files []string
	if req.SeedGitTracked {
		if files, err = gitTrackedFiles(ctx, seed.Path); err != nil {
			return nil, err
		}
	}
	// The first boot restores the snapshot one-shot runs of this machine use
	// (made now if missing): the supervisor boots the very machine a run does.
	policy, _ := network.ParsePolicy(req.NetworkPolicy) // checked by validateCreate
	rules, _ := egressFor(policy, req.EgressRules)      // checked by validateCreate
	restore := c.workspaceRestore(ctx, e, req.VCPUCount, req.MemMiB, verdict.Accel, verdict.GuestTSCKHz, policy)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.report(ctx, ProgressEvent{Stage: "boot", Message: "booting workspace on " + req.Environment})
	rec, err := c.workspaces(ctx).Create(ctx, workspace.CreateSpec{
		Name: req.Name, Labels: req.Labels, Environment: req.Environment, EnvVersion: e.Manifest.Version,
		KernelPath: e.KernelPath, RootfsPath: e.RootfsPath, VCPUCount: req.VCPUCount, MemMiB: req.MemMiB,
		Accel: string(verdict.Accel), GuestTSCKHz: verdict.GuestTSCKHz, TTLSeconds: req.TTLSeconds, Seed: seed, SeedFiles: files,
		Restore: restore, Secrets: secretSet, NetworkPolicy: recordedPolicy(policy), Egress: rules,
		TTLAction: ttlAction(req.TTLAction), IdlePauseSeconds: req.IdlePauseSeconds,
	})
	if err != nil {
		return nil, err
	}
	return c.WorkspaceStatus(ctx, rec.ID)
}

// workspaceRestore returns the saved machine a fresh workspace VM (create,
// reset) restores: the run snapshot of its machine, made first if missing;
// nil when there is none (the VM then boots cold).
func (c *Client) workspaceRestore(ctx context.Context, e *env.Environment, vcpus, memMiB int, accel vmm.Accel, tscKHz int, policy network.Policy) *workspace.Restore {
	runner := c.oneshot()
	snap := runner.RunSnapshot(ctx, e, vm.Spec{
		KernelPath: e.KernelPath, RootfsPath: e.RootfsPath,
		VCPUs: vcpus, MemMiB: memMiB, Accel: accel, GuestTSCKHz: tscKHz, Kind: "workspace", Network: policy,
	})
	if snap == nil {
		return nil
	}
	return &workspace.Restore{StatePath: snap.StatePath, DiskPath: snap.DiskPath,
		Failed: func(err error) { runner.InvalidateSnapshot(snap, err) }}
}

// seedErr names the seed_path field in an error opening the seed.
func seedErr(err error) error {
	var te *errdefs.Error
	if errors.As(err, &te) && te.Code == errdefs.CodeInvalidArgument {
		return errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument, "seed_path")
	}
	return err
}

// loadSecrets reads secret files and validates the set (brokered secrets
// need a network: policy).
func (c *Client) loadSecrets(in []WorkspaceSecret, policy string) (secrets.Set, error) {
	out := make([]secrets.Secret, 0, len(in))
	for _, s := range in {
		var hosts []string
		if s.BrokerHosts != nil {
			p, err := network.ParsePolicy(policy)
			if err != nil {
				return nil, err
			}
			if hosts, err = network.ValidateBrokerHosts(p, s.Name, s.BrokerHosts); err != nil {
				return nil, err
			}
		}
		switch {
		case s.FilePath != "" && s.Value != "":
			return nil, errdefs.InvalidArgument("secrets", "secret %s has both a value and a file: give one", s.Name)
		case s.FilePath != "":
			if err := secrets.ValidateName("secrets", s.Name); err != nil {
				return nil, err
			}
			f, err := c.readSecretFile(s.Name, s.FilePath)
			if err != nil {
				return nil, err
			}
			f.BrokerHosts = hosts
			out = append(out, f)
		default:
			out = append(out, secrets.Secret{Name: s.Name, Value: s.Value, Source: secrets.SourceValue, BrokerHosts: hosts})
		}
	}
	return secrets.NewSet(out)
}

func validateCreate(req CreateWorkspaceRequest) error {
	switch {
	case strings.TrimSpace(req.Environment) == "":
		return errdefs.InvalidArgument("environment", "is required").WithNext("; %s to see the environments", "pyro env list", "vm_list_environments")
	case req.VCPUCount < MinVCPUCount || req.VCPUCount > MaxVCPUCount:
		return errdefs.InvalidArgument("vcpu_count", "%d is out of range [%d, %d]", req.VCPUCount, MinVCPUCount, MaxVCPUCount)
	case req.MemMiB < MinMemMiB || req.MemMiB > MaxMemMiB:
		return errdefs.InvalidArgument("mem_mib", "%d is out of range [%d, %d]", req.MemMiB, MinMemMiB, MaxMemMiB)
	case req.TTLSeconds < 0:
		return errdefs.InvalidArgument("ttl_seconds", "%d is negative; use 0 for no expiry", req.TTLSeconds)
	}
	if err := workspace.ValidateLifecycle(workspace.Lifecycle{TTLAction: &req.TTLAction, IdlePauseSeconds: &req.IdlePauseSeconds}); err != nil {
		return err
	}
	policy, err := network.ParsePolicy(req.NetworkPolicy)
	if err != nil {
		return err
	}
	if _, err := egressFor(policy, req.EgressRules); err != nil {
		return err
	}
	if req.Name != "" {
		if err := workspace.ValidateName(req.Name); err != nil {
			return err
		}
	}
	if req.SeedGitTracked && req.SeedPath == "" {
		return errdefs.InvalidArgument("seed_git_tracked", "needs seed_path: the Git checkout to seed from")
	}
	return workspace.ValidateLabels(req.Labels)
}

// readSecretFile reads a secret's value from a host file.
func (c *Client) readSecretFile(name, path string) (secrets.Secret, error) {
	src, err := c.host.OpenSource(path)
	if err != nil {
		return secrets.Secret{}, err
	}
	defer src.Close()
	if src.File == nil {
		return secrets.Secret{}, errdefs.InvalidArgument("secrets", "the file of secret %s, %s, is a directory", name, src.Path)
	}
	return secrets.Read(name, src.File)
}

// ListWorkspaces returns all workspaces, newest activity first.
func (c *Client) ListWorkspaces(ctx context.Context) ([]Workspace, error) {
	recs, err := c.allWorkspaces(ctx).List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Workspace, 0, len(recs))
	for _, r := range recs {
		out = append(out, c.toWorkspace(r, nil))
	}
	return out, nil
}

// WorkspaceStatus returns one workspace (by id or name).
func (c *Client) WorkspaceStatus(ctx context.Context, ref string) (*Workspace, error) {
	r, info, err := c.workspaces(ctx).Status(ctx, ref)
	if err != nil {
		return nil, err
	}
	w := c.toWorkspace(r, info)
	c.addCommands(ctx, &w)
	return &w, nil
}

// addCommands lists a running workspace's commands in w, best effort: a
// workspace stopping meanwhile has none.
func (c *Client) addCommands(ctx context.Context, w *Workspace) {
	if w.State != workspace.StateRunning {
		return
	}
	if _, cmds, err := c.workspaces(ctx).Commands(ctx, w.WorkspaceID); err == nil && len(cmds) > 0 {
		w.Commands = toCommands(w.WorkspaceID, cmds)
	}
}

// ExecWorkspace runs a command in the workspace's /workspace (by /bin/sh -lc)
// and records it in the workspace's history.
func (c *Client) ExecWorkspace(ctx context.Context, req WorkspaceExecRequest) (*WorkspaceExecResult, error) {
	ereq, err := execLimits{Command: req.Command, TimeoutSeconds: req.TimeoutSeconds, MaxOutputBytes: req.MaxOutputBytes}.Request(req.Env, req.Cwd)
	if err != nil {
		return nil, err
	}
	if req.Background {
		return c.startCommand(ctx, req, ereq)
	}
	var sink *agentclient.ExecStreams
	if req.Stdout != nil || req.Stderr != nil || req.Stdin != nil {
		sink = &agentclient.ExecStreams{Stdout: req.Stdout, Stderr: req.Stderr, Stdin: req.Stdin}
	}
	r, res, entry, err := c.workspaces(ctx).Exec(ctx, req.Workspace, ereq, req.SecretEnv, sink)
	if err != nil {
		return nil, err
	}
	state := CommandExited
	if res.TimedOut {
		state = CommandTimedOut
	}
	return &WorkspaceExecResult{WorkspaceID: r.ID, Command: entry.Command, Sequence: entry.Sequence,
		ExecOutput: execOutput(&res.ExecResult), CommandID: res.CommandID, State: state}, nil
}

// startCommand starts a background command.
func (c *Client) startCommand(ctx context.Context, req WorkspaceExecRequest, ereq agentproto.ExecRequest) (*WorkspaceExecResult, error) {
	if req.Stdout != nil || req.Stderr != nil || req.Stdin != nil {
		return nil, errdefs.InvalidArgument("background", "a background command has no stdin and no live output: follow it with CommandLogs")
	}
	if req.TimeoutSeconds == 0 {
		ereq.TimeoutMs = 0 // none: it runs until it ends or is killed
	}
	r, info, err := c.workspaces(ctx).StartCommand(ctx, req.Workspace, ereq, req.SecretEnv)
	if err != nil {
		return nil, err
	}
	return &WorkspaceExecResult{WorkspaceID: r.ID, Command: info.Command, CommandID: info.CommandID, State: info.State}, nil
}

// WorkspaceLogs returns the workspace's command history, oldest first.
func (c *Client) WorkspaceLogs(ctx context.Context, ref string) ([]WorkspaceLogEntry, error) {
	_, entries, err := c.workspaces(ctx).Logs(ref)
	if err != nil {
		return nil, err
	}
	if entries == nil {
		return []WorkspaceLogEntry{}, nil
	}
	return mapSlice(entries, toLogEntry), nil
}

// StopWorkspace flushes and powers off the VM; disk, history and baseline stay.
func (c *Client) StopWorkspace(ctx context.Context, ref string) (*Workspace, error) {
	r, err := c.workspaces(ctx).Stop(ctx, ref)
	if err != nil {
		return nil, err
	}
	w := toWorkspace(r, nil)
	return &w, nil
}

// StartWorkspace boots a stopped workspace from its kept disk.
func (c *Client) StartWorkspace(ctx context.Context, ref string) (*Workspace, error) {
	c.reapOrphans()
	if _, err := c.workspaces(ctx).Start(ctx, ref); err != nil {
		return nil, err
	}
	return c.WorkspaceStatus(ctx, ref)
}

// DeleteWorkspace removes the workspace's VM and all its host state.
func (c *Client) DeleteWorkspace(ctx context.Context, ref string) (*Workspace, error) {
	r, err := c.workspaces(ctx).Delete(ctx, ref)
	if err != nil {
		return nil, err
	}
	w := toWorkspace(r, nil)
	w.State = "deleted"
	return &w, nil
}

// toWorkspace is r as every face reports it, with the saved machine of a
// paused one.
func (c *Client) toWorkspace(r *workspace.Record, info *supervisor.Info) Workspace {
	w := toWorkspace(r, info)
	if r.State == workspace.StatePaused {
		m := workspace.NewManager(filepath.Join(c.stateDir, "workspaces"), c.supervisorBinary(), c.backend, c.log)
		if p := m.PausedInfo(r.ID); p != nil {
			at := p.PausedAt
			w.PausedAt, w.PausedStateBytes = &at, p.StateBytes
		}
	}
	return w
}

func toWorkspace(r *workspace.Record, info *supervisor.Info) Workspace {
	w := Workspace{
		WorkspaceID: r.ID, Name: r.Name, Labels: r.Labels, Environment: r.Environment, State: r.State,
		VCPUCount: r.VCPUCount, MemMiB: r.MemMiB, TTLSeconds: r.TTLSeconds, CreatedAt: r.CreatedAt,
		LastActivityAt: r.LastActivityAt, CommandCount: r.Commands, SeedEntries: r.Seed.Entries, SeedBytes: r.Seed.Bytes,
		SeedSkipped: mapSlice(r.Seed.Skipped, toSkipped), SnapshotCount: len(r.Snapshots), Secrets: mapSlice(r.Secrets, toSecretInfo),
		NetworkPolicy: string(recordPolicy(r.NetworkPolicy)), Egress: (*EgressRules)(r.Egress),
		TTLAction: ttlAction(r.TTLAction), IdlePauseSeconds: r.IdlePauseSeconds, Backend: cmp.Or(r.Backend, vmm.FirstBackend),
	}
	if t := r.ExpiresAt(); !t.IsZero() {
		w.ExpiresAt = &t
	}
	if info != nil {
		w.ExecutionMode, w.BootMs = info.ExecutionMode, info.BootMs
	}
	return w
}

// recordedPolicy is how a workspace record stores policy: "" for off, so
// that records written before networks existed read as off.
func recordedPolicy(p network.Policy) string {
	if !p.Enabled() {
		return ""
	}
	return string(p)
}

// recordPolicy reads a record's policy back.
func recordPolicy(s string) network.Policy {
	p, err := network.ParsePolicy(s)
	if err != nil {
		return network.PolicyOff // a record pyro did not write
	}
	return p
}
