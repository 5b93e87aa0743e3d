// Package oneshot runs one command in a disposable VM: restore the machine
// from its snapshot (or boot it), run the command, destroy the VM, on every
// path. Package pyro checks the request, picks the environment and machine,
// and maps the result and errors to its public ones; workspaces live in
// internal/workspace and reach the guest through their supervisor.
package oneshot

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/guestexec"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/secrets"
	"github.com/pyrovm/pyro/internal/supervisor"
	"github.com/pyrovm/pyro/internal/vm"
	"github.com/pyrovm/pyro/internal/vmm"
)

// Runner boots, runs and tears down one-shot VMs, and keeps the snapshots
// they (and new workspaces) start from.
type Runner struct {
	backend  vmm.Backend
	vms      string // where each VM's dir lives while it runs
	cacheDir string // the environment cache; snapshots live under it
	log      *slog.Logger
	progress func(ctx context.Context, stage, message string)
}

// New returns a runner whose VMs run on backend and live under vmsDir, and
// whose snapshots live in the environment cache cacheDir; progress, when
// set, hears the stages of a run (snapshot, exec).
func New(backend vmm.Backend, vmsDir, cacheDir string, log *slog.Logger, progress func(ctx context.Context, stage, message string)) *Runner {
	return &Runner{backend: backend, vms: vmsDir, cacheDir: cacheDir, log: log, progress: progress}
}

func (c *Runner) vmsDir() string { return c.vms }

func (c *Runner) report(ctx context.Context, stage, message string) {
	if c.progress != nil {
		c.progress(ctx, stage, message)
	}
}

// Job is one command for a fresh VM.
type Job struct {
	Env  *env.Environment
	Spec vm.Spec // the machine (its Broker is set by Run)
	// Exec is the command as guestexec.Shell built it; Run adds the
	// secrets' placeholders to its environment.
	Exec agentproto.ExecRequest
	// Secrets are brokered secrets: the command gets each placeholder as
	// $NAME, the egress point puts the values into requests to their hosts.
	Secrets secrets.Set
	Streams agentclient.ExecStreams // live output and stdin, when set
}

// Result is a finished one-shot command, its output redacted.
type Result struct {
	agentclient.ExecResult
	// NoAnswer: the guest did not answer within the command's timeout
	// plus agentclient.Grace; the VM was destroyed (reported as a timeout).
	NoAnswer      bool
	VMID          string
	BootMs        int64
	ExecutionMode string
	Blocked       []network.Blocked // the newest refusals of the VM's network
}

// Run boots a VM for job (restored from its machine's snapshot when one can
// be made), runs the command and destroys the VM, on every path: success,
// error, timeout and cancellation of ctx.
func (c *Runner) Run(ctx context.Context, job Job) (*Result, error) {
	start := time.Now()
	broker, err := runBroker(job.Secrets)
	if err != nil {
		return nil, err
	}
	job.Spec.Broker = broker
	envv, err := job.Secrets.Env(placeholderEnv(job.Secrets))
	if err != nil {
		return nil, err
	}
	if err := guestexec.AddSecretEnv(&job.Exec, envv); err != nil {
		return nil, err
	}
	v, err := c.bootForRun(ctx, job.Env, job.Spec)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	res := &Result{VMID: v.ID, BootMs: v.BootDur.Milliseconds(), ExecutionMode: v.ExecutionMode()}
	c.log.Debug("booted", "vm", v.ID, "boot_ms", res.BootMs, "ms", time.Since(start).Milliseconds())
	if err := supervisor.InstallBrokerCA(ctx, v.Agent(), broker); err != nil {
		return nil, err
	}
	c.report(ctx, "exec", "running the command")
	red := job.Secrets.Redactor()
	out, err := Exec(ctx, v, job.Exec, job.Streams)
	switch {
	case errors.Is(err, agentclient.ErrNoAnswer):
		res.NoAnswer = true
	case err != nil:
		return nil, red.Error(err)
	default:
		res.ExecResult = *out
		res.Stdout, res.Stderr = []byte(red.String(string(out.Stdout))), []byte(red.String(string(out.Stderr)))
	}
	c.log.Debug("command done", "vm", v.ID, "ms", time.Since(start).Milliseconds())
	res.Blocked = blocked(v)
	v.Close()
	c.log.Debug("vm destroyed", "vm", v.ID, "ms", time.Since(start).Milliseconds())
	return res, nil
}

// Exec runs req in v. The agent enforces the timeout in the guest (killing
// the process group); the agent client bounds the call at the timeout plus
// agentclient.Grace, past which the error is agentclient.ErrNoAnswer (the
// session is given up: destroy the VM). A cancelled ctx gives canceled, a
// VM that ended gives vm_crashed with the guest's last console lines.
// streams, when set, get the output as it comes and feed stdin.
func Exec(ctx context.Context, v *vm.VM, req agentproto.ExecRequest, streams agentclient.ExecStreams) (*agentclient.ExecResult, error) {
	out, err := v.Agent().ExecIO(ctx, req, streams)
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, agentclient.ErrNoAnswer):
		return nil, err
	case ctx.Err() != nil:
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

// runBroker makes the network broker of a VM that lives for one run: its
// CA exists only in this process's memory.
func runBroker(set secrets.Set) (*network.Broker, error) {
	if len(set) == 0 {
		return nil, nil
	}
	var hosts []string
	for _, s := range set {
		hosts = append(hosts, s.BrokerHosts...)
	}
	slices.Sort(hosts)
	pem, err := network.NewBrokerCA("run", slices.Compact(hosts))
	if err != nil {
		return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "make the run's secret broker CA")
	}
	ca, err := network.ParseBrokerCA(pem)
	if err != nil {
		return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "make the run's secret broker CA")
	}
	b := &network.Broker{CA: ca}
	for _, s := range set {
		b.Secrets = append(b.Secrets, network.BrokeredSecret{Name: s.Name, Placeholder: s.Placeholder, Value: s.Value, Hosts: s.BrokerHosts})
	}
	return b, nil
}

// placeholderEnv maps every secret of set to its own variable name (for
// set.Env): a one-shot command gets every placeholder.
func placeholderEnv(set secrets.Set) map[string]string {
	m := map[string]string{}
	for _, s := range set {
		m[s.Name] = ""
	}
	return m
}

// maxBlocked bounds the refusals a run result carries (the newest).
const maxBlocked = 100

// blocked is what a one-shot VM's network refused.
func blocked(v *vm.VM) []network.Blocked {
	st := v.Network()
	if st == nil {
		return nil
	}
	e := st.BlockedLog().Entries
	if len(e) > maxBlocked {
		e = e[len(e)-maxBlocked:]
	}
	return e
}
