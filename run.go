package pyro

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/guestexec"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/oneshot"
	"github.com/pyrovm/pyro/internal/vm"
	"github.com/pyrovm/pyro/internal/vmm"
)

// Defaults and limits shared by every face.
const (
	DefaultVCPUCount      = 1
	DefaultMemMiB         = 1024
	DefaultTimeoutSeconds = guestexec.DefaultTimeoutSeconds
	MaxTimeoutSeconds     = guestexec.MaxTimeoutSeconds
	DefaultMaxOutputBytes = guestexec.DefaultMaxOutputBytes
	MaxMaxOutputBytes     = guestexec.MaxMaxOutputBytes
	MinVCPUCount          = vmm.MinVCPUs
	MaxVCPUCount          = vmm.MaxVCPUs
	MinMemMiB             = vmm.MinMemMiB
	MaxMemMiB             = vmm.MaxMemMiB
)

// RunRequest is one command in a fresh, disposable VM. Zero values take the
// defaults above.
type RunRequest struct {
	Environment    string `json:"environment"`
	Command        string `json:"command"` // run by /bin/sh -lc in the guest
	VCPUCount      int    `json:"vcpu_count,omitempty"`
	MemMiB         int    `json:"mem_mib,omitempty"`
	TimeoutSeconds int    `json:"timeout_seconds,omitempty"`
	MaxOutputBytes int64  `json:"max_output_bytes,omitempty"` // per stream
	// Network gives the guest outbound network access (policy egress: NAT
	// to anywhere but the host itself, its loopback services and
	// link-local addresses). Off by default: the guest has no network device.
	Network bool `json:"network,omitempty"`
	// EgressRules, when any is given, allow only what they name (needs
	// Network): allow_hosts, allow_cidrs, allow_presets.
	EgressRules
	// Secrets are brokered secrets only (each with BrokerHosts; needs
	// Network): the command gets each one's placeholder as $NAME, and the
	// egress point puts the value into request headers for its hosts
	// (docs/secret-broker.md). The run's broker CA lives only as long as
	// the run.
	Secrets []WorkspaceSecret `json:"secrets,omitempty"`

	// Stdout and Stderr, when set, get the command's output as it comes
	// (all of it; the result still holds the capped copy). Stdin, when
	// set, is the command's stdin until EOF.
	Stdout io.Writer `json:"-"`
	Stderr io.Writer `json:"-"`
	Stdin  io.Reader `json:"-"`
}

// RunResult is what a one-shot run returns on every face. DurationMs is
// the whole call's.
type RunResult struct {
	Environment string `json:"environment"`
	Command     string `json:"command"`
	ExecOutput
	BootMs        int64  `json:"boot_ms"`
	ExecutionMode string `json:"execution_mode"`
	VMID          string `json:"vm_id"`
	// BlockedConnections are the newest DNS names and connections the
	// network refused (with --network), each with its reason.
	BlockedConnections []BlockedConnection `json:"blocked_connections,omitempty"`
}

// withDefaults fills zero values and checks ranges, naming the field at fault.
func (r RunRequest) withDefaults() (RunRequest, error) {
	r, err := r.machineWithDefaults()
	if err != nil {
		return r, err
	}
	l, err := r.limits().WithDefaults()
	r.TimeoutSeconds, r.MaxOutputBytes = l.TimeoutSeconds, l.MaxOutputBytes
	return r, err
}

// machineWithDefaults fills and checks the part of r that names the machine
// (environment, size, network): what prepare and readiness ask about.
func (r RunRequest) machineWithDefaults() (RunRequest, error) {
	if r.VCPUCount == 0 {
		r.VCPUCount = DefaultVCPUCount
	}
	if r.MemMiB == 0 {
		r.MemMiB = DefaultMemMiB
	}
	switch {
	case strings.TrimSpace(r.Environment) == "":
		return r, errdefs.InvalidArgument("environment", "is required").WithNext("; %s to see the environments", "pyro env list", "vm_list_environments")
	case r.VCPUCount < MinVCPUCount || r.VCPUCount > MaxVCPUCount:
		return r, errdefs.InvalidArgument("vcpu_count", "%d is out of range [%d, %d]", r.VCPUCount, MinVCPUCount, MaxVCPUCount)
	case r.MemMiB < MinMemMiB || r.MemMiB > MaxMemMiB:
		return r, errdefs.InvalidArgument("mem_mib", "%d is out of range [%d, %d]", r.MemMiB, MinMemMiB, MaxMemMiB)
	}
	_, err := egressFor(runPolicy(r.Network), r.EgressRules)
	return r, err
}

func (r RunRequest) limits() execLimits {
	return execLimits{Command: r.Command, TimeoutSeconds: r.TimeoutSeconds, MaxOutputBytes: r.MaxOutputBytes}
}

// Run boots a fresh VM, runs one command and destroys the VM, on every path:
// success, error, timeout and cancellation of ctx. The VM starts from a
// memory snapshot of its machine when one can be made (the first run of an
// environment and machine size makes it). The work is internal/oneshot's;
// here the request is checked and the result mapped.
func (c *Client) Run(ctx context.Context, req RunRequest) (*RunResult, error) {
	start := time.Now()
	req, err := req.withDefaults()
	if err != nil {
		return nil, err
	}
	ereq, err := req.limits().Request(nil, "/")
	if err != nil {
		return nil, err
	}
	set, err := c.brokeredOnly(req.Secrets, runPolicy(req.Network))
	if err != nil {
		return nil, err
	}
	e, spec, err := c.runMachine(ctx, req)
	if err != nil {
		return nil, err
	}
	c.log.Debug("environment and accelerator ready", "env", req.Environment, "accel", spec.Accel, "ms", time.Since(start).Milliseconds())
	c.report(ctx, ProgressEvent{Stage: "boot", Message: "booting " + req.Environment})
	r, err := c.oneshot().Run(ctx, oneshot.Job{Env: e, Spec: spec, Exec: ereq, Secrets: set,
		Streams: agentclient.ExecStreams{Stdout: req.Stdout, Stderr: req.Stderr, Stdin: req.Stdin}})
	if err != nil {
		return nil, err
	}
	res := &RunResult{Environment: req.Environment, Command: req.Command, ExecOutput: execOutput(&r.ExecResult),
		BootMs: r.BootMs, ExecutionMode: r.ExecutionMode, VMID: r.VMID, BlockedConnections: toBlocked(r.Blocked)}
	if r.NoAnswer {
		res.ExecOutput = ExecOutput{ExitCode: TimeoutExitCode, TimedOut: true,
			Stderr: "pyro: the guest did not answer after the command's timeout; the VM was destroyed"}
	}
	res.DurationMs = time.Since(start).Milliseconds()
	return res, nil
}

// oneshot is the runner of one-shot VMs and keeper of their snapshots.
func (c *Client) oneshot() *oneshot.Runner {
	return oneshot.New(c.backend, c.vmsDir(), c.envs.CacheDir(), c.log, func(ctx context.Context, stage, message string) {
		c.report(ctx, ProgressEvent{Stage: stage, Message: message})
	})
}

// runMachine makes sure req's environment is installed and returns it with
// the machine a one-shot VM of req boots (also what its snapshot saves).
func (c *Client) runMachine(ctx context.Context, req RunRequest) (*env.Environment, vm.Spec, error) {
	e, err := c.ensureEnv(ctx, req.Environment)
	if err != nil {
		return nil, vm.Spec{}, err
	}
	c.reapOrphans()
	spec, err := c.runSpec(ctx, e, req)
	return e, spec, err
}

// runSpec is the machine a one-shot run of req boots in e.
func (c *Client) runSpec(ctx context.Context, e *env.Environment, req RunRequest) (vm.Spec, error) {
	verdict := c.accelFor(ctx, e.KernelPath)
	policy := runPolicy(req.Network)
	rules, err := egressFor(policy, req.EgressRules)
	if err != nil {
		return vm.Spec{}, err
	}
	return vm.Spec{
		KernelPath: e.KernelPath, RootfsPath: e.RootfsPath,
		VCPUs: req.VCPUCount, MemMiB: req.MemMiB, Accel: verdict.Accel, GuestTSCKHz: verdict.GuestTSCKHz, Kind: "run", Network: policy, Egress: rules,
	}, nil
}

func runPolicy(on bool) network.Policy {
	if on {
		return network.PolicyEgress
	}
	return network.PolicyOff
}
