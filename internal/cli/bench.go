package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/bench"
)

func (a *app) benchCommand() *cobra.Command {
	var jsonOut bool
	var envName string
	var runs, vcpus, mem int
	var workspaces, execParts, pause bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure `pyro run ENV -- true` against a raw QEMU boot of the same kernel and image",
		Long: "Times, interleaved and in one run: the floor (QEMU booting the same kernel and image with init=/bin/true\n" +
			"to power-off, nothing of pyro in it) and `pyro run ENV -- true` end to end as a separate process.\n" +
			"Prints both medians and their ratio.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, done, err := a.client(jsonOut)
			if err != nil {
				return a.fail(ctx, err, jsonOut)
			}
			defer done()
			// A first run builds what is missing and settles the accelerator.
			warm, err := c.Run(ctx, pyro.RunRequest{Environment: envName, Command: "true", VCPUCount: vcpus, MemMiB: mem})
			if err != nil {
				return a.fail(ctx, err, jsonOut)
			}
			m, err := c.InspectEnvironment(ctx, envName)
			if err != nil {
				return a.fail(ctx, err, jsonOut)
			}
			self, err := cliBinary()
			if err != nil {
				return a.fail(ctx, err, jsonOut)
			}
			t := bench.Target{
				Environment: envName, KernelPath: m.Kernel.Path, RootfsPath: m.Rootfs.Path,
				ExecutionMode: warm.ExecutionMode, VCPUs: vcpus, MemMiB: mem, PyroBin: self, Runs: runs,
			}
			r, err := bench.OneShot(ctx, t, func(s string) {
				if !jsonOut {
					fmt.Fprintln(a.stderr, s)
				}
			})
			if err != nil {
				return a.fail(ctx, err, jsonOut)
			}
			var wr *bench.WorkspaceReport
			if workspaces {
				if wr, err = bench.Workspaces(ctx, c, envName, runs, 10<<20, r.FloorMedianMs); err != nil {
					return a.fail(ctx, err, jsonOut)
				}
			}
			var er *bench.ExecReport
			if execParts {
				if er, err = a.benchExec(cmd, c, envName, self, runs, r.FloorMedianMs); err != nil {
					return a.fail(ctx, err, jsonOut)
				}
			}
			var pr *bench.PauseReport
			if pause {
				if pr, err = bench.PauseResume(ctx, c, envName, mem, runs, r.FloorMedianMs, func(s string) {
					if !jsonOut {
						fmt.Fprintln(a.stderr, s)
					}
				}); err != nil {
					return a.fail(ctx, err, jsonOut)
				}
			}
			if jsonOut {
				writeJSON(a.stdout, map[string]any{"one_shot": r, "workspaces": wr, "exec": er, "pause": pr})
				return nil
			}
			fmt.Fprintf(a.stdout, "environment:        %s (%s, %d vCPU, %d MiB)\n", r.Environment, r.ExecutionMode, vcpus, mem)
			fmt.Fprintf(a.stdout, "floor (raw QEMU):   median %d ms  %v\n", r.FloorMedianMs, r.FloorMs)
			fmt.Fprintf(a.stdout, "pyro run -- true:   median %d ms  %v\n", r.RunMedianMs, r.RunMs)
			fmt.Fprintf(a.stdout, "ratio:              %.3f\n", r.Ratio)
			if wr != nil {
				fmt.Fprintf(a.stdout, "workspace create (10 MiB seed): median %d ms  %v  (%.2f x floor)\n", wr.CreateMedianMs, wr.CreateMs, wr.CreateFloorRatio)
				fmt.Fprintf(a.stdout, "workspace exec true:            median %d ms  %v  (%.2f x floor)\n", wr.ExecMedianMs, wr.ExecMs, wr.ExecFloorRatio)
				fmt.Fprintf(a.stdout, "idle workspace host memory:     %d MiB (supervisor + VMM RSS)\n", wr.IdleHostMemMiB)
			}
			if er != nil {
				ms := func(us int64) float64 { return float64(us) / 1000 }
				fmt.Fprintf(a.stdout, "workspace exec -- true (CLI):   median %.1f ms  (%.3f x floor)\n", ms(er.CLIUs), er.FloorRatio)
				for _, p := range er.Parts {
					fmt.Fprintf(a.stdout, "  %-28s %6.1f ms\n", p.Name, ms(p.Us))
				}
				fmt.Fprintf(a.stdout, "  (sdk exec in-process %.1f ms, supervisor exec %.1f ms, agent call %.1f ms, in the agent %.1f ms;\n",
					ms(er.SDKUs), ms(er.SupervisorUs), ms(er.AgentUs), ms(er.GuestTotalUs))
				fmt.Fprintf(a.stdout, "   the complete CLI's start, added to every other command: %.1f ms)\n", ms(er.FullStartUs))
			}
			if pr != nil {
				fmt.Fprintf(a.stdout, "workspace pause:                median %d ms  %v  (state %s)\n", pr.PauseMedianMs, pr.PauseMs, humanBytes(pr.StateBytes))
				fmt.Fprintf(a.stdout, "resume to first exec:           median %d ms  %v  (%.2f x floor; %d cold fallbacks)\n", pr.ResumeExecMedianMs, pr.ResumeExecMs, pr.ResumeFloorRatio, pr.ColdFallbacks)
				sp := pr.Split
				fmt.Fprintf(a.stdout, "  split: resume call %d ms (VMM start %d, agent %d, clock sync %d) + first exec %d ms\n",
					sp.ResumeCallMs, sp.VMMStartMs, sp.AgentMs, sp.SyncMs, sp.FirstExecMs)
				fmt.Fprintf(a.stdout, "fork of 1 (until it answers):   median %d ms  %v  (%.2f x floor)\n", pr.Fork1MedianMs, pr.Fork1Ms, pr.Fork1FloorRatio)
				fmt.Fprintf(a.stdout, "  split: source saved (guest stopped) %d ms, fork restored %d ms\n", sp.ForkSaveMs, sp.ForkBootMs)
				fmt.Fprintf(a.stdout, "fork of 4 (until all answer):   median %d ms  %v  (%.2f x floor)\n", pr.Fork4MedianMs, pr.Fork4Ms, pr.Fork4FloorRatio)
				fmt.Fprintf(a.stdout, "host memory idle / paused:      %d MiB / %d MiB (supervisor + VMM RSS; idle: %d MiB anonymous, %d MiB PSS)\n",
					pr.RunningIdleMemMiB, pr.PausedHostMemMiB, pr.RunningIdleAnonMiB, pr.RunningIdlePssMiB)
				fmt.Fprintf(a.stdout, "host memory per idle workspace, %d running: %d MiB PSS, %d MiB MemAvailable drop\n",
					pr.MarginalN, pr.MarginalPssMiB, pr.MarginalMemAvailDropMiB)
				fmt.Fprintf(a.stdout, "host memory 10 s after a job that touched 400 MiB: %d MiB\n", pr.AfterJobMemMiB)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&envName, "env", pyro.DefaultEnvironment, "environment to measure")
	f.IntVar(&runs, "runs", 7, "measured rounds")
	f.IntVar(&vcpus, "vcpu-count", pyro.DefaultVCPUCount, "virtual CPUs")
	f.IntVar(&mem, "mem-mib", pyro.DefaultMemMiB, "guest memory in MiB")
	f.BoolVar(&workspaces, "workspaces", false, "also measure workspace create (10 MiB seed), exec round trips and idle memory")
	f.BoolVar(&execParts, "exec", false, "also split a CLI `workspace exec -- true` into the CLI, supervisor, channel, agent, guest command and durability sync")
	f.BoolVar(&pause, "pause", false, "also measure workspace pause, resume to the first exec, fork of 1 and 4, state size and host memory idle and paused")
	f.BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

// benchExec measures the exec breakdown on a fresh workspace of env.
func (a *app) benchExec(cmd *cobra.Command, c *pyro.Client, env, self string, runs int, floorMs int64) (*bench.ExecReport, error) {
	ctx := cmd.Context()
	w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: env})
	if err != nil {
		return nil, err
	}
	defer c.DeleteWorkspace(context.WithoutCancel(ctx), w.WorkspaceID)
	return bench.Exec(ctx, c, self, w.WorkspaceID, runs, floorMs)
}
