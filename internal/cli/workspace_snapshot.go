package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
)

func (a *app) printSnapshot(verb string) func(any) {
	return func(v any) {
		s := v.(*pyro.WorkspaceSnapshot)
		fmt.Fprintf(a.stdout, "%s snapshot %s of %s: %d entries, %s\n", verb, s.Name, s.WorkspaceID, s.Entries, humanBytes(s.Bytes))
		a.printSkipped(s.Skipped, s.SkippedFiles, "left out")
	}
}

func (a *app) wsSnapshot() *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Named copies of /workspace that reset can return to"}
	var createJSON, listJSON, deleteJSON bool
	create := &cobra.Command{
		Use: "create ID NAME", Short: "Save the running workspace's /workspace as NAME", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, createJSON, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.CreateSnapshot(ctx, pyro.SnapshotRequest{Workspace: args[0], Name: args[1]})
			}, a.printSnapshot("created"))
		},
	}
	create.Flags().BoolVar(&createJSON, "json", false, "print one JSON object")
	list := &cobra.Command{
		Use: "list ID", Short: "List the workspace's snapshots, oldest first", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, listJSON, func(ctx context.Context, c *pyro.Client) (any, error) {
				ss, err := c.ListSnapshots(ctx, args[0])
				return map[string]any{"snapshots": ss}, err
			}, func(v any) {
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tCREATED\tENTRIES\tSIZE")
				for _, s := range v.(map[string]any)["snapshots"].([]pyro.WorkspaceSnapshot) {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", s.Name, s.CreatedAt.Format(time.RFC3339), s.Entries, humanBytes(s.Bytes))
				}
				tw.Flush()
			})
		},
	}
	list.Flags().BoolVar(&listJSON, "json", false, "print one JSON object")
	del := &cobra.Command{
		Use: "delete ID NAME", Short: "Delete a snapshot", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, deleteJSON, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.DeleteSnapshot(ctx, pyro.SnapshotRequest{Workspace: args[0], Name: args[1]})
			}, a.printSnapshot("deleted"))
		},
	}
	del.Flags().BoolVar(&deleteJSON, "json", false, "print one JSON object")
	cmd.AddCommand(create, list, del)
	return cmd
}

func (a *app) wsReset() *cobra.Command {
	var snapshot string
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "reset ID [--snapshot NAME|baseline]",
		Short: "Rebuild the sandbox from the baseline or a snapshot; keep id, name, labels, baseline and snapshots",
		Long: "Reset stops the workspace's VM and boots a fresh one whose /workspace holds the baseline (default) or the\n" +
			"named snapshot. Shells, services and the command history end; diff still compares with the baseline.\n" +
			"If it fails, the workspace is left stopped as it was before the reset.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.ResetWorkspace(ctx, pyro.ResetWorkspaceRequest{Workspace: args[0], Snapshot: snapshot})
			}, func(v any) {
				w := v.(*pyro.Workspace)
				fmt.Fprintf(a.stdout, "reset from %s\n", w.ResetFrom)
				printWorkspace(a, w)
			})
		},
	}
	cmd.Flags().StringVar(&snapshot, "snapshot", "baseline", "snapshot to reset to, or baseline")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}
