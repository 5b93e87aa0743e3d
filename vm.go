package pyro

import (
	"context"
	"path/filepath"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/supervisor"
	"github.com/pyrovm/pyro/internal/workspace"
)

// DefaultVMTTLSeconds is the expiry of low-level VMs unless told otherwise.
const DefaultVMTTLSeconds = 600

// CreateVMRequest defines a low-level VM (created stopped; StartVM boots it).
type CreateVMRequest struct {
	Environment string `json:"environment"`
	VCPUCount   int    `json:"vcpu_count,omitempty"`
	MemMiB      int    `json:"mem_mib,omitempty"`
	TTLSeconds  int    `json:"ttl_seconds,omitempty"` // 0 = DefaultVMTTLSeconds
	// NetworkPolicy is off (default) or egress, as for workspaces. A
	// low-level VM runs no services, so it has nothing to publish.
	NetworkPolicy string `json:"network_policy,omitempty"`
	// EgressRules, when any is given, allow only what they name (needs
	// network_policy egress).
	EgressRules
	// Secrets are brokered secrets only (each with BrokerHosts; needs
	// network_policy egress): every vm_exec command gets each one's
	// placeholder as $NAME (docs/secret-broker.md).
	Secrets []WorkspaceSecret `json:"secrets,omitempty"`
}

// VM is a low-level VM as every face reports it.
type VM struct {
	VMID           string       `json:"vm_id"`
	Environment    string       `json:"environment"`
	State          string       `json:"state"` // stopped, running or deleted
	VCPUCount      int          `json:"vcpu_count"`
	MemMiB         int          `json:"mem_mib"`
	TTLSeconds     int          `json:"ttl_seconds"`
	CreatedAt      time.Time    `json:"created_at"`
	LastActivityAt time.Time    `json:"last_activity_at"`
	ExpiresAt      *time.Time   `json:"expires_at,omitempty"`
	ExecutionMode  string       `json:"execution_mode,omitempty"`
	BootMs         int64        `json:"boot_ms,omitempty"`
	NetworkPolicy  string       `json:"network_policy"`
	Egress         *EgressRules `json:"egress_rules,omitempty"` // nil: no allow list
	Secrets        []SecretInfo `json:"secrets,omitempty"`      // brokered: names, hosts, placeholders
}

// VMExecRequest is the one command of a low-level VM.
type VMExecRequest struct {
	VMID           string `json:"vm_id"`
	Command        string `json:"command"`
	TimeoutSeconds int    `json:"timeout_seconds,omitempty"`
	MaxOutputBytes int64  `json:"max_output_bytes,omitempty"`
}

// NetworkInfo describes a VM's network. The guest side (address, gateway,
// DNS, MAC) is filled while the VM runs with a network.
type NetworkInfo struct {
	VMID          string   `json:"vm_id"`
	NetworkPolicy string   `json:"network_policy"` // off: no network device
	State         string   `json:"state"`
	GuestAddress  string   `json:"guest_address,omitempty"` // CIDR
	Gateway       string   `json:"gateway,omitempty"`
	DNS           []string `json:"dns,omitempty"`
	MAC           string   `json:"mac,omitempty"`
	// Egress is the allow list (nil: none).
	Egress *EgressRules `json:"egress_rules,omitempty"`
}

// machines manages low-level VMs: the workspace machinery under its own root.
func (c *Client) machines() *workspace.Manager {
	return workspace.NewManager(filepath.Join(c.stateDir, "machines"), c.supervisorBinary(), c.backend, c.log)
}

func toVM(r *workspace.Record, info *supervisor.Info) *VM {
	w := toWorkspace(r, info)
	return &VM{VMID: w.WorkspaceID, Environment: w.Environment, State: w.State, VCPUCount: w.VCPUCount,
		MemMiB: w.MemMiB, TTLSeconds: w.TTLSeconds, CreatedAt: w.CreatedAt, LastActivityAt: w.LastActivityAt,
		ExpiresAt: w.ExpiresAt, ExecutionMode: w.ExecutionMode, BootMs: w.BootMs, NetworkPolicy: w.NetworkPolicy, Egress: w.Egress,
		Secrets: w.Secrets}
}

// CreateVM defines a VM without booting it.
func (c *Client) CreateVM(ctx context.Context, req CreateVMRequest) (*VM, error) {
	c.reapExpiredMachines(ctx)
	if req.VCPUCount == 0 {
		req.VCPUCount = DefaultVCPUCount
	}
	if req.MemMiB == 0 {
		req.MemMiB = DefaultMemMiB
	}
	if req.TTLSeconds == 0 {
		req.TTLSeconds = DefaultVMTTLSeconds
	}
	if err := validateCreate(CreateWorkspaceRequest{Environment: req.Environment, VCPUCount: req.VCPUCount, MemMiB: req.MemMiB, TTLSeconds: req.TTLSeconds, NetworkPolicy: req.NetworkPolicy, EgressRules: req.EgressRules}); err != nil {
		return nil, err
	}
	policy, _ := network.ParsePolicy(req.NetworkPolicy) // checked by validateCreate
	rules, _ := egressFor(policy, req.EgressRules)      // checked by validateCreate
	if policy.AllowsPublish() {
		return nil, errdefs.InvalidArgument("network_policy", "low-level VMs run no services, so they have no ports to publish: use %s, or a workspace", network.PolicyEgress)
	}
	set, err := c.brokeredOnly(req.Secrets, policy)
	if err != nil {
		return nil, err
	}
	e, err := c.ensureEnv(ctx, req.Environment)
	if err != nil {
		return nil, err
	}
	verdict := c.accelFor(ctx, e.KernelPath)
	r, err := c.machines().Create(ctx, workspace.CreateSpec{
		Environment: req.Environment, EnvVersion: e.Manifest.Version, KernelPath: e.KernelPath, RootfsPath: e.RootfsPath,
		VCPUCount: req.VCPUCount, MemMiB: req.MemMiB, Accel: string(verdict.Accel), GuestTSCKHz: verdict.GuestTSCKHz, TTLSeconds: req.TTLSeconds, NoBoot: true,
		NetworkPolicy: recordedPolicy(policy), Egress: rules, Secrets: set,
	})
	if err != nil {
		return nil, err
	}
	return toVM(r, nil), nil
}

// StartVM boots a created or stopped VM.
func (c *Client) StartVM(ctx context.Context, id string) (*VM, error) {
	c.reapOrphans()
	if _, err := c.machines().Start(ctx, id); err != nil {
		return nil, vmErr(err, id)
	}
	return c.VMStatus(ctx, id)
}

// VMStatus returns one VM.
func (c *Client) VMStatus(ctx context.Context, id string) (*VM, error) {
	c.reapExpiredMachines(ctx)
	r, info, err := c.machines().Status(ctx, id)
	if err != nil {
		return nil, vmErr(err, id)
	}
	return toVM(r, info), nil
}

// ListVMs returns all low-level VMs, newest activity first.
func (c *Client) ListVMs(ctx context.Context) ([]VM, error) {
	c.reapExpiredMachines(ctx)
	recs, err := c.machines().List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]VM, 0, len(recs))
	for _, r := range recs {
		out = append(out, *toVM(r, nil))
	}
	return out, nil
}

// ExecVM runs one command in a running VM, then deletes the VM, whatever
// the outcome.
func (c *Client) ExecVM(ctx context.Context, req VMExecRequest) (*RunResult, error) {
	ereq, err := execLimits{Command: req.Command, TimeoutSeconds: req.TimeoutSeconds, MaxOutputBytes: req.MaxOutputBytes}.Request(nil, "")
	if err != nil {
		return nil, err
	}
	m := c.machines()
	start := time.Now()
	r0, info, err := m.Status(ctx, req.VMID)
	if err != nil {
		return nil, vmErr(err, req.VMID)
	}
	if info != nil { // running: whatever happens next, the VM is cleaned up
		defer m.Delete(context.WithoutCancel(ctx), req.VMID)
	}
	r, res, _, err := m.Exec(ctx, req.VMID, ereq, brokeredEnv(r0.Secrets), nil)
	if err != nil {
		return nil, vmErr(err, req.VMID)
	}
	out := &RunResult{Environment: r.Environment, Command: req.Command, ExecOutput: execOutput(&res.ExecResult), VMID: r.ID}
	out.DurationMs = time.Since(start).Milliseconds()
	if info != nil {
		out.BootMs, out.ExecutionMode = info.BootMs, info.ExecutionMode
	}
	return out, nil
}

// StopVM powers a VM off, keeping its disk.
func (c *Client) StopVM(ctx context.Context, id string) (*VM, error) {
	r, err := c.machines().Stop(ctx, id)
	if err != nil {
		return nil, vmErr(err, id)
	}
	return toVM(r, nil), nil
}

// DeleteVM removes a VM and all its host state.
func (c *Client) DeleteVM(ctx context.Context, id string) (*VM, error) {
	r, err := c.machines().Delete(ctx, id)
	if err != nil {
		return nil, vmErr(err, id)
	}
	v := toVM(r, nil)
	v.State = "deleted"
	return v, nil
}

// VMNetworkInfo reports a VM's network policy and, while it runs with a
// network, the guest's addresses.
func (c *Client) VMNetworkInfo(ctx context.Context, id string) (*NetworkInfo, error) {
	r, info, err := c.machines().Network(ctx, id)
	if err != nil {
		return nil, vmErr(err, id)
	}
	out := &NetworkInfo{VMID: r.ID, NetworkPolicy: string(recordPolicy(r.NetworkPolicy)), State: r.State, Egress: (*EgressRules)(r.Egress)}
	if info != nil && info.GuestAddress != "" {
		out.GuestAddress, out.Gateway, out.DNS, out.MAC = info.GuestAddress, info.Gateway, info.DNS, info.MAC
	}
	return out, nil
}

func (c *Client) reapExpiredMachines(ctx context.Context) []string {
	reaped, err := c.machines().ReapExpired(ctx, time.Now())
	if len(reaped) > 0 || err != nil {
		c.log.Info("reaped expired VMs", "vms", reaped, "err", err)
	}
	return reaped
}

// vmErr names VMs, not workspaces, in errors of the shared machinery.
func vmErr(err error, id string) error {
	switch errdefs.CodeOf(err) {
	case workspace.CodeNotFound:
		return errdefs.New(errdefs.ErrNotFound, errdefs.CodeVMNotFound, "no VM %q: vm_create makes one (VMs expire after their ttl_seconds)", id)
	case errdefs.CodeWorkspaceStopped:
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeVMStopped, "VM %s is not running: start it with vm_start first", id)
	}
	return err
}
