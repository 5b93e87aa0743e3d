package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
)

func (a *app) envBuildCommand() *cobra.Command {
	var jsonOut, network, force bool
	var req pyro.BuildEnvironmentRequest
	var diskSize string
	pull := a.envPullCommand("build")
	cmd := &cobra.Command{
		Use:   "build NAME --from ENV --run CMD [--run CMD]... | build [NAME] --env-file FILE",
		Short: "Build a custom environment: a base plus setup steps, saved as a new local environment",
		Long: "Boots the base (a catalog name, an image reference or an environment built earlier), runs each --run\n" +
			"step in order by /bin/sh -lc as root in / (outbound network only with --network), and saves the\n" +
			"result as the local environment NAME with its own digest and fast-start snapshot. NAME then works\n" +
			"wherever an environment is named (run, workspace create, vm create, prepare, SDK, MCP).\n" +
			"The digest covers the base's image and the steps: building an unchanged definition again is a\n" +
			"cache hit; --force builds anyway. A failing step stops the build and nothing is saved.\n" +
			"--env-file FILE takes the definition from an environment file (TOML: from, steps, network,\n" +
			"disk_size_mib); NAME then defaults to envfile-<digest of the file>.\n" +
			"Without --from, --run or --env-file, \"env build CATALOG-ENV...\" is \"env pull\" (kept for scripts).",
		Example: "  pyro env build node22 --from debian:12 --network --run 'apt-get update' --run 'apt-get install -y nodejs'\n" +
			"  pyro env build --env-file .pyro/environment.toml",
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.From == "" && len(req.Steps) == 0 && req.EnvFile == "" {
				// "env build debian:12" predates custom environments: it pulls.
				for _, n := range args {
					if !pyro.IsCatalogEnvironment(n) {
						return fmt.Errorf("env build %s needs --from ENV and --run CMD (or --env-file FILE); to fetch an image use \"pyro env pull %s\"", n, n)
					}
				}
				for _, n := range []string{"json", "force", "disk-size"} {
					if fl := cmd.Flags().Lookup(n); fl.Changed {
						_ = pull.Flags().Set(n, fl.Value.String())
					}
				}
				return pull.RunE(cmd, args)
			}
			switch {
			case len(args) > 1:
				return fmt.Errorf("env build takes one NAME, got %d", len(args))
			case len(args) == 1:
				req.Name = args[0]
			case req.EnvFile == "":
				return fmt.Errorf("env build needs the NAME of the environment to make")
			}
			req.Network, req.Force = network, force
			c, done, err := a.client(jsonOut)
			if err != nil {
				return a.fail(cmd.Context(), err, jsonOut)
			}
			defer done()
			if diskSize != "" {
				if req.DiskSize, err = parseSize(diskSize); err != nil {
					return a.fail(cmd.Context(), err, jsonOut)
				}
			}
			res, err := c.BuildEnvironment(cmd.Context(), req)
			if err != nil {
				return a.fail(cmd.Context(), err, jsonOut)
			}
			if jsonOut {
				writeJSON(a.stdout, res)
				return nil
			}
			how := fmt.Sprintf("built in %.1f s", float64(res.DurationMs)/1000)
			if res.Cached {
				how = "cached: same definition over the same base"
			}
			fmt.Fprintf(a.stdout, "%s %s ready (%s, %s, rootfs %s)\n", res.Environment, res.Version, res.Digest, how, humanBytes(res.Manifest.Rootfs.Size))
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&jsonOut, "json", false, "print one JSON object")
	f.StringVar(&req.From, "from", "", "base environment: catalog name, image reference or a built environment")
	f.StringArrayVar(&req.Steps, "run", nil, "a setup step (shell command), run as root in /; repeatable, run in order")
	f.BoolVar(&network, "network", false, "give the steps outbound network access (egress)")
	f.StringVar(&diskSize, "disk-size", "", "root filesystem size, e.g. 4G (at least the base's; the steps already have it)")
	f.IntVar(&req.StepTimeoutSeconds, "step-timeout-seconds", pyro.DefaultStepTimeoutSeconds, "time limit of each step")
	f.IntVar(&req.VCPUCount, "vcpu-count", pyro.DefaultVCPUCount, "virtual CPUs of the machine the steps run in")
	f.IntVar(&req.MemMiB, "mem-mib", pyro.DefaultMemMiB, "memory (MiB) of the machine the steps run in")
	f.StringVar(&req.EnvFile, "env-file", "", "take the definition from this environment file (TOML)")
	f.BoolVar(&force, "force", false, "build even when the same definition is cached (pull: rebuild from scratch)")
	return cmd
}

func (a *app) printBuild(m *pyro.EnvironmentManifest) {
	b := m.Build
	fmt.Fprintf(a.stdout, "source:   build (digest %s)\nbase:     %s %s (rootfs sha256 %s)\n", m.Digest, b.From, b.BaseVersion, b.BaseRootfsSHA256)
	if b.EnvFile != "" {
		fmt.Fprintf(a.stdout, "env file: %s\n", b.EnvFile)
	}
	fmt.Fprintf(a.stdout, "network:  %v\nsteps:    %d\n", b.Network, len(b.Steps))
	for i, s := range b.Steps {
		fmt.Fprintf(a.stdout, "  %d. %s\n", i+1, s)
	}
}
