package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
)

func (a *app) prepareCommand() *cobra.Command {
	var req pyro.PrepareRequest
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "prepare [ENV]", Short: "Warm an environment: build it if needed and make its fast-start snapshot", Args: cobra.MaximumNArgs(1),
		Example: "  pyro prepare debian:12-build\n  pyro prepare --force debian:12   # fresh packages, new snapshot",
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Environment = pyro.DefaultEnvironment
			if len(args) == 1 {
				req.Environment = args[0]
			}
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) { return c.Prepare(ctx, req) }, func(v any) {
				r := v.(*pyro.PrepareResult)
				fmt.Fprintf(a.stdout, "environment: %s %s (%s, %d vCPU, %d MiB)\n", r.Environment, r.Version, r.ExecutionMode, r.VCPUCount, r.MemMiB)
				if r.SnapshotReady {
					fmt.Fprintf(a.stdout, "snapshot:    ready (%s): runs and workspace creates restore it\n", r.SnapshotID)
				} else {
					fmt.Fprintf(a.stdout, "snapshot:    not ready: %s\n", r.Note)
				}
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&req.VCPUCount, "vcpu-count", pyro.DefaultVCPUCount, "virtual CPUs of the machine to prepare")
	f.IntVar(&req.MemMiB, "mem-mib", pyro.DefaultMemMiB, "guest memory in MiB of the machine to prepare")
	f.BoolVar(&req.Network, "network", false, "prepare the machine with a network device (for run --network and networked workspaces)")
	f.BoolVar(&req.Force, "force", false, "rebuild (or re-pull) the environment from scratch and remake its fast-start snapshot")
	f.BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}
