package pyro

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/supervisor"
	"github.com/pyrovm/pyro/internal/vm"
	"github.com/pyrovm/pyro/internal/vmm"
)

// Defaults and limits shared by every face.
const (
	DefaultVCPUCount      = 1
	DefaultMemMiB         = 1024
	DefaultTimeoutSeconds = 30
	MaxTimeoutSeconds     = 3600
	DefaultMaxOutputBytes = 1 << 20
	MaxMaxOutputBytes     = 16 << 20
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

// RunResult is what a one-shot run returns on every face.
type RunResult struct {
	Environment     string `json:"environment"`
	Command         string `json:"command"`
	ExitCode        int    `json:"exit_code"`
	Signal          string `json:"signal,omitempty"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	StderrTruncated bool   `json:"stderr_truncated"`
	TimedOut        bool   `json:"timed_out"`
	DurationMs      int64  `json:"duration_ms"`
	BootMs          int64  `json:"boot_ms"`
	ExecutionMode   string `json:"execution_mode"`
	VMID            string `json:"vm_id"`
	// BlockedConnections are the newest DNS names and connections the
	// network refused (with --network), each with its reason.
	BlockedConnections []BlockedConnection `json:"blocked_connections,omitempty"`
}

// withDefaults fills zero values and checks ranges, naming the field at fault.
func (r RunRequest) withDefaults() (RunRequest, error) {
	if r.VCPUCount == 0 {
		r.VCPUCount = DefaultVCPUCount
	}
	if r.MemMiB == 0 {
		r.MemMiB = DefaultMemMiB
	}
	if r.TimeoutSeconds == 0 {
		r.TimeoutSeconds = DefaultTimeoutSeconds
	}
	if r.MaxOutputBytes == 0 {
		r.MaxOutputBytes = DefaultMaxOutputBytes
	}
	switch {
	case strings.TrimSpace(r.Environment) == "":
		return r, errdefs.InvalidArgument("environment", "is required").WithNext("; %s to see the environments", "pyro env list", "vm_list_environments")
	case strings.TrimSpace(r.Command) == "":
		return r, errdefs.InvalidArgument("command", "is empty; give the shell command to run in the guest")
	case r.VCPUCount < MinVCPUCount || r.VCPUCount > MaxVCPUCount:
		return r, errdefs.InvalidArgument("vcpu_count", "%d is out of range [%d, %d]", r.VCPUCount, MinVCPUCount, MaxVCPUCount)
	case r.MemMiB < MinMemMiB || r.MemMiB > MaxMemMiB:
		return r, errdefs.InvalidArgument("mem_mib", "%d is out of range [%d, %d]", r.MemMiB, MinMemMiB, MaxMemMiB)
	case r.TimeoutSeconds < 1 || r.TimeoutSeconds > MaxTimeoutSeconds:
		return r, errdefs.InvalidArgument("timeout_seconds", "%d is out of range [1, %d]", r.TimeoutSeconds, MaxTimeoutSeconds)
	case r.MaxOutputBytes < 0 || r.MaxOutputBytes > MaxMaxOutputBytes:
		return r, errdefs.InvalidArgument("max_output_bytes", "%d is out of range [0, %d]", r.MaxOutputBytes, MaxMaxOutputBytes)
	}
	if _, err := egressFor(runPolicy(r.Network), r.EgressRules); err != nil {
		return r, err
	}
	return r, nil
}

// Run boots a fresh VM, runs one command and destroys the VM, on every path:
// success, error, timeout and cancellation of ctx. The VM starts from a
// memory snapshot of its machine when one can be made (the first run of an
// environment and machine size makes it).
func (c *Client) Run(ctx context.Context, req RunRequest) (*RunResult, error) {
	start := time.Now()
	req, err := req.withDefaults()
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
	if spec.Broker, err = oneShotBroker(set); err != nil {
		return nil, err
	}
	envv, err := set.Env(placeholderEnv(set))
	if err != nil {
		return nil, err
	}
	c.log.Debug("environment and accelerator ready", "env", req.Environment, "accel", spec.Accel, "ms", time.Since(start).Milliseconds())
	c.report(ctx, ProgressEvent{Stage: "boot", Message: "booting " + req.Environment})
	v, err := c.bootForRun(ctx, e, spec)
	if err != nil {
		return nil, err
	}
	defer v.Close()

	res := &RunResult{
		Environment: req.Environment, Command: req.Command,
		BootMs: v.BootDur.Milliseconds(), ExecutionMode: v.ExecutionMode(), VMID: v.ID,
	}
	c.log.Debug("booted", "vm", v.ID, "boot_ms", res.BootMs, "ms", time.Since(start).Milliseconds())
	if err := supervisor.InstallBrokerCA(ctx, v.Agent(), spec.Broker); err != nil {
		return nil, err
	}
	c.report(ctx, ProgressEvent{Stage: "exec", Message: "running the command"})
	out, err := execShell(ctx, v, req.Command, envv, "/", req.TimeoutSeconds, req.MaxOutputBytes,
		agentclient.ExecStreams{Stdout: req.Stdout, Stderr: req.Stderr, Stdin: req.Stdin})
	if err != nil {
		return nil, set.Redactor().Error(err)
	}
	red := set.Redactor()
	out.Stdout, out.Stderr = red.String(out.Stdout), red.String(out.Stderr)
	c.log.Debug("command done", "vm", v.ID, "ms", time.Since(start).Milliseconds())
	res.fill(out)
	res.BlockedConnections = runBlocked(v)
	v.Close()
	res.DurationMs = time.Since(start).Milliseconds()
	c.log.Debug("vm destroyed", "vm", v.ID, "ms", res.DurationMs)
	return res, nil
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
		VCPUs: req.VCPUCount, MemMiB: req.MemMiB, Accel: verdict.Accel, Kind: "run", Network: policy, Egress: rules,
	}, nil
}

func runPolicy(on bool) network.Policy {
	if on {
		return network.PolicyEgress
	}
	return network.PolicyOff
}

// execOutcome is a finished guest command, as every face reports it.
type execOutcome struct {
	ExitCode        int
	Signal          string
	Stdout, Stderr  string
	StdoutTruncated bool
	StderrTruncated bool
	TimedOut        bool
}

func (r *RunResult) fill(o *execOutcome) {
	r.ExitCode, r.Signal, r.Stdout, r.Stderr = o.ExitCode, o.Signal, o.Stdout, o.Stderr
	r.StdoutTruncated, r.StderrTruncated, r.TimedOut = o.StdoutTruncated, o.StderrTruncated, o.TimedOut
}

// TimeoutExitCode is the exit code reported for a command that hit its timeout.
const TimeoutExitCode = 124

// hostGrace is how long past the guest-side timeout the host waits for the
// agent's answer before it declares the guest hung.
const hostGrace = 10 * time.Second

// execShell runs command as /bin/sh -lc would (the agent's Shell). The agent enforces the timeout
// in the guest (killing the process group); the host enforces it too, with a
// grace period, in case the guest does not answer.
// streams, when set, get the output as it comes and feed stdin.
func execShell(ctx context.Context, v *vm.VM, command string, envv []string, cwd string, timeoutSec int, maxOut int64, streams agentclient.ExecStreams) (*execOutcome, error) {
	timeout := time.Duration(timeoutSec) * time.Second
	ectx, cancel := context.WithTimeout(ctx, timeout+hostGrace)
	defer cancel()
	r, err := v.Agent().ExecIO(ectx, agentproto.ExecRequest{
		Shell: command, Env: envv, Cwd: cwd,
		TimeoutMs: timeout.Milliseconds(), MaxStdout: maxOut, MaxStderr: maxOut,
	}, streams)
	if err != nil {
		if ctx.Err() == nil && errors.Is(ectx.Err(), context.DeadlineExceeded) {
			return &execOutcome{ExitCode: TimeoutExitCode, TimedOut: true,
				Stderr: "pyro: the guest did not answer after the command's timeout; the VM was destroyed"}, nil
		}
		if ctx.Err() != nil {
			return nil, errdefs.Wrap(ctx.Err(), errdefs.ErrCanceled, errdefs.CodeCanceled, "canceled; the VM was destroyed")
		}
		select {
		case <-v.Exited():
			return nil, errdefs.New(errdefs.ErrUnavailable, errdefs.CodeVMCrashed,
				"the VM ended while the command ran\n--- guest console (last lines) ---\n%s", v.ConsoleTail(20))
		default:
		}
		return nil, err
	}
	o := &execOutcome{
		ExitCode: outcome(r.ExitCode, r.Signal, r.TimedOut), Signal: r.Signal,
		Stdout: string(r.Stdout), Stderr: string(r.Stderr),
		StdoutTruncated: r.StdoutTruncated, StderrTruncated: r.StderrTruncated,
		TimedOut: r.TimedOut,
	}
	return o, nil
}

// outcome is the exit code every face reports: the command's own, 128+N when
// a signal killed it (as a shell reports it), 124 when it hit its timeout.
func outcome(exitCode int, signal string, timedOut bool) int {
	switch {
	case timedOut:
		return TimeoutExitCode
	case signal != "" && exitCode < 0:
		return 128 + int(unix.SignalNum("SIG"+signal))
	}
	return exitCode
}
