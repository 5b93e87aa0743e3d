package mcp

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
)

type environmentBuildInput struct {
	Name               string   `json:"name,omitempty"`
	From               string   `json:"from,omitempty"`
	Steps              []string `json:"steps,omitempty"`
	Network            bool     `json:"network,omitempty"`
	StepTimeoutSeconds int      `json:"step_timeout_seconds,omitempty"`
	VCPUCount          int      `json:"vcpu_count,omitempty"`
	MemMiB             int      `json:"mem_mib,omitempty"`
	EnvFile            string   `json:"env_file,omitempty"`
}

// addEnvironmentBuild registers environment_build, offered only with
// "mcp serve --allow-build": a built environment is kept on the host for
// every later user, so the operator decides whether a model may make them.
// Its base is pulled only as --allow-pull permits, and its steps get a
// network only when --no-network is not set.
func addEnvironmentBuild(s *mcp.Server, d deps, name string) {
	c := d.c
	tmin, tmax := rng(1, pyro.MaxTimeoutSeconds)
	cpuMin, cpuMax := rng(pyro.MinVCPUCount, pyro.MaxVCPUCount)
	memMin, memMax := rng(pyro.MinMemMiB, pyro.MaxMemMiB)
	t := &mcp.Tool{
		Name: name,
		Description: "Build a custom environment: boot the base environment, run setup steps in order (as root, in /), and save " +
			"the result as a new local environment usable as environment by vm_run and workspace_create. Use it when many " +
			"workspaces need the same tools (install them once instead of in every workspace). An unchanged definition is " +
			"a cache hit (cached: true). A failing step is a build_step_failed error with the step, its exit code and the " +
			"end of its output; nothing is saved. Either name + from + steps, or env_file (an environment file: " + d.host.read + ").",
		InputSchema: inputSchema[environmentBuildInput](map[string]prop{
			"name":                 {desc: "Name of the new environment: lower-case letters, digits, '.', '_', '-', optionally :TAG; not a catalog name. With env_file it defaults to the file's own envfile-<digest>."},
			"from":                 {desc: environmentDesc},
			"steps":                {desc: "Shell commands run in order by /bin/sh -lc, e.g. [\"apt-get update\", \"apt-get install -y nodejs\"]."},
			"network":              {desc: "Give the steps outbound network access (needed to download packages).", def: false},
			"step_timeout_seconds": {desc: "Time limit of each step.", def: pyro.DefaultStepTimeoutSeconds, min: tmin, max: tmax},
			"vcpu_count":           {desc: "Virtual CPUs of the machine the steps run in.", def: pyro.DefaultVCPUCount, min: cpuMin, max: cpuMax},
			"mem_mib":              {desc: "Memory (MiB) of the machine the steps run in.", def: pyro.DefaultMemMiB, min: memMin, max: memMax},
			"env_file":             {desc: "Host path of an environment file (TOML: from, steps, network, disk_size_mib) to build instead of name/from/steps."},
		}),
	}
	addTool(s, d, t, handler(func(ctx context.Context, in environmentBuildInput) (*pyro.BuildEnvironmentResult, error) {
		req := pyro.BuildEnvironmentRequest{Name: in.Name, From: in.From, Steps: in.Steps, Network: in.Network,
			StepTimeoutSeconds: in.StepTimeoutSeconds, VCPUCount: in.VCPUCount, MemMiB: in.MemMiB, EnvFile: in.EnvFile}
		if err := d.checkEnvFileNetwork(in.EnvFile); err != nil {
			return nil, err
		}
		if in.Network {
			if err := d.checkNetwork("egress"); err != nil {
				return nil, err
			}
		}
		return c.BuildEnvironment(ctx, req)
	}))
}

// checkEnvFileNetwork refuses an environment file whose steps want a
// network from a server started with --no-network.
func (d deps) checkEnvFileNetwork(path string) error {
	if path == "" || !d.noNetwork {
		return nil
	}
	f, err := d.c.LoadEnvironmentFile(path)
	if err != nil {
		return err
	}
	if f.Network {
		return d.checkNetwork("egress")
	}
	return nil
}
