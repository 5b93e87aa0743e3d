package mcp

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
)

var fullOnly = []Profile{ProfileWorkspaceFull}

type vmCreateInput struct {
	Environment   string        `json:"environment,omitempty"`
	VCPUCount     int           `json:"vcpu_count,omitempty"`
	MemMiB        int           `json:"mem_mib,omitempty"`
	TTLSeconds    int           `json:"ttl_seconds,omitempty"`
	NetworkPolicy string        `json:"network_policy,omitempty"`
	AllowHosts    []string      `json:"allow_hosts,omitempty"`
	AllowCIDRs    []string      `json:"allow_cidrs,omitempty"`
	AllowPresets  []string      `json:"allow_presets,omitempty"`
	Secrets       []secretInput `json:"secrets,omitempty"`
}

const vmFields = "Result: vm_id, state (stopped, running, deleted), environment, sizes, expires_at, secrets (brokered: name, broker_hosts, placeholder; vm_exec commands get $NAME = the placeholder)."

func addVMCreate(s *mcp.Server, d deps, name string) {
	c := d.c
	cpuMin, cpuMax := rng(pyro.MinVCPUCount, pyro.MaxVCPUCount)
	memMin, memMax := rng(pyro.MinMemMiB, pyro.MaxMemMiB)
	ttlMin, ttlMax := rng(1, 24*3600)
	t := &mcp.Tool{Name: name,
		Description: "Low-level: define a VM without booting it (vm_start boots it; vm_exec runs one command and then deletes it). Prefer vm_run for one-offs and workspaces for multi-step work. " + vmFields,
		InputSchema: inputSchema[vmCreateInput](map[string]prop{
			"environment": {desc: environmentDesc, def: pyro.DefaultEnvironment},
			"vcpu_count":  {desc: "Virtual CPUs.", def: pyro.DefaultVCPUCount, min: cpuMin, max: cpuMax},
			"mem_mib":     {desc: "Guest memory in MiB.", def: pyro.DefaultMemMiB, min: memMin, max: memMax},
			"ttl_seconds": {desc: "Delete the VM after this many seconds without activity.", def: pyro.DefaultVMTTLSeconds, min: ttlMin, max: ttlMax},
			"network_policy": {desc: "The guest's network: off (no network device) or egress (outbound NAT to the internet and " +
				"other machines, never to this host, its loopback services or link-local/metadata addresses).",
				def: "off", enum: []any{"off", "egress"}},
			"allow_hosts":   allowProps["allow_hosts"],
			"allow_cidrs":   allowProps["allow_cidrs"],
			"allow_presets": allowProps["allow_presets"],
			"secrets":       brokeredSecretsProp,
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in vmCreateInput) (*pyro.VM, error) {
		if err := d.checkNetwork(in.NetworkPolicy); err != nil {
			return nil, err
		}
		if in.Environment == "" {
			in.Environment = pyro.DefaultEnvironment
		}
		return c.CreateVM(ctx, pyro.CreateVMRequest{Environment: in.Environment, VCPUCount: in.VCPUCount, MemMiB: in.MemMiB, TTLSeconds: in.TTLSeconds, NetworkPolicy: in.NetworkPolicy,
			EgressRules: pyro.EgressRules{AllowHosts: in.AllowHosts, AllowCIDRs: in.AllowCIDRs, AllowPresets: in.AllowPresets},
			Secrets:     brokeredSecrets(in.Secrets)})
	}))
}

type vmRefInput struct {
	VMID string `json:"vm_id"`
}

var vmRefProps = map[string]prop{"vm_id": {desc: "VM id from vm_create.", required: true}}

func addVMRefTool[Out any](description string, call func(*pyro.Client, context.Context, string) (Out, error)) func(*mcp.Server, deps, string) {
	return func(s *mcp.Server, d deps, name string) {
		t := &mcp.Tool{Name: name, Description: description, InputSchema: inputSchema[vmRefInput](vmRefProps)}
		addTool(s, d, t, handler(func(ctx context.Context, in vmRefInput) (Out, error) {
			return call(d.c, ctx, in.VMID)
		}))
	}
}

func addVMExec(s *mcp.Server, d deps, name string) {
	c := d.c
	toMin, toMax := rng(1, pyro.MaxTimeoutSeconds)
	t := &mcp.Tool{Name: name,
		Description: "Low-level: run one shell command in a started VM, then delete the VM. Result fields as vm_run.",
		InputSchema: inputSchema[pyro.VMExecRequest](map[string]prop{
			"vm_id":            vmRefProps["vm_id"],
			"command":          {desc: "Shell command, run by /bin/sh -lc in the guest.", required: true},
			"timeout_seconds":  {desc: "Kill the command after this many seconds.", def: pyro.DefaultTimeoutSeconds, min: toMin, max: toMax},
			"max_output_bytes": outputCapProp,
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in pyro.VMExecRequest) (*pyro.RunResult, error) {
		return c.ExecVM(ctx, in)
	}))
}

type vmListOutput struct {
	VMs []pyro.VM `json:"vms"`
}

func addVMList(s *mcp.Server, d deps, name string) {
	c := d.c
	t := &mcp.Tool{Name: name, Description: "Low-level: list the VMs made by vm_create, newest activity first, with their state.",
		InputSchema: inputSchema[listEnvironmentsInput](map[string]prop{})}
	addTool(s, d, t, handler(func(ctx context.Context, _ listEnvironmentsInput) (vmListOutput, error) {
		vms, err := c.ListVMs(ctx)
		return vmListOutput{VMs: vms}, err
	}))
}
