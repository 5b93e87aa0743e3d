package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
)

func (a *app) wsPause() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "pause ID",
		Short: "Save the workspace's memory and disk and end its VM; resume (or any call needing the VM) restores it",
		Long: "Save the running workspace's memory, devices and disk into its directory and end its VM: a paused\n" +
			"workspace holds no host process or memory. Processes, services and background jobs go on after\n" +
			"resume with their PIDs; open shells end (open new ones).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.PauseWorkspace(ctx, args[0])
			}, func(v any) {
				r := v.(*pyro.WorkspacePauseResult)
				printWorkspace(a, &r.Workspace)
				fmt.Fprintf(a.stdout, "pause:       %d ms, %s of memory and device state\n", r.PauseMs, humanBytes(r.StateBytes))
				if len(r.ShellsEnded) > 0 {
					fmt.Fprintf(a.stdout, "shells:      %d ended by the pause\n", len(r.ShellsEnded))
				}
			})
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) wsResume() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "resume ID",
		Short: "Restore a paused workspace: processes, services and published ports go on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.ResumeWorkspace(ctx, args[0])
			}, func(v any) {
				r := v.(*pyro.WorkspaceResumeResult)
				printWorkspace(a, &r.Workspace)
				switch {
				case r.Restored:
					fmt.Fprintf(a.stdout, "resume:      restored in %d ms\n", r.ResumeMs)
				case r.RestoreError != "":
					fmt.Fprintf(a.stdout, "resume:      the saved state did not restore (%s): booted cold from the disk in %d ms; processes and services did not survive\n", r.RestoreError, r.ResumeMs)
				default:
					fmt.Fprintln(a.stdout, "resume:      it was running")
				}
			})
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) wsFork() *cobra.Command {
	var req pyro.ForkWorkspaceRequest
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "fork ID [--count N] [--name PREFIX]",
		Short: "Make N workspaces from this one's memory and disk at this instant; it runs on, stopped only for the save",
		Long: "Make N workspaces from the workspace's memory and disk at this instant. Each fork has its own id,\n" +
			"copy-on-write disk, network, published host ports and fresh entropy, and keeps the source's processes,\n" +
			"services, baseline, snapshots, history, secrets and labels (plus forked_from). Deleting the source\n" +
			"never breaks a fork.",
		Example: "  pyro workspace fork fix-tests --count 4 --name try",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Workspace = args[0]
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.ForkWorkspace(ctx, req)
			}, func(v any) {
				r := v.(*pyro.WorkspaceForkResult)
				fmt.Fprintf(a.stdout, "forked %s into %d workspaces in %d ms (source %s):\n", r.Source.WorkspaceID, len(r.Forks), r.ForkMs, r.Source.State)
				for _, f := range r.Forks {
					fmt.Fprintf(a.stdout, "  %s", f.WorkspaceID)
					if f.Name != "" {
						fmt.Fprintf(a.stdout, " (%s)", f.Name)
					}
					fmt.Fprintln(a.stdout)
				}
			})
		},
	}
	cmd.Flags().IntVar(&req.Count, "count", 1, "how many forks")
	cmd.Flags().StringVar(&req.NamePrefix, "name", "", "name the forks PREFIX-1 ... PREFIX-N")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}
