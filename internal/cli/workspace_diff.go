package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/errdefs"
)

func (a *app) wsDiff() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "diff ID", Short: "Compare /workspace with its create-time baseline", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.DiffWorkspace(ctx, args[0])
			}, func(v any) {
				d := v.(*pyro.WorkspaceDiff)
				for _, ch := range d.Changes {
					if ch.Diff == "" {
						line := ch.Summary
						if line == "" {
							line = ch.ModeChange
						}
						fmt.Fprintf(a.stdout, "%s %s: %s\n", ch.Status, printable(ch.Path), printable(line))
					}
				}
				fmt.Fprint(a.stdout, d.Patch)
				fmt.Fprintf(a.stderr, "%d added, %d modified, %d deleted\n", d.Added, d.Modified, d.Deleted)
				a.printSkipped(d.Skipped, d.SkippedFiles, "not compared")
			})
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) wsPatch() *cobra.Command {
	patch := &cobra.Command{Use: "patch", Short: "Apply unified diffs to /workspace"}
	var text, file string
	var jsonOut bool
	apply := &cobra.Command{
		Use: "apply ID (--patch T | --patch-file F)", Short: "Apply a unified diff, all or nothing", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := text
			switch {
			case text != "" && file != "":
				return a.fail(cmd.Context(), errdefs.InvalidArgument("patch", "give --patch or --patch-file, not both"), jsonOut)
			case file == "-":
				b, err := io.ReadAll(os.Stdin)
				if err != nil {
					return a.fail(cmd.Context(), err, jsonOut)
				}
				p = string(b)
			case file != "":
				b, err := os.ReadFile(file)
				if err != nil {
					return a.fail(cmd.Context(), errdefs.InvalidArgument("patch_file", "%v", err), jsonOut)
				}
				p = string(b)
			}
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.ApplyPatch(ctx, pyro.ApplyPatchRequest{Workspace: args[0], Patch: p})
			}, func(v any) {
				for _, f := range v.(*pyro.PatchResult).Changed {
					fmt.Fprintln(a.stdout, "patched", printable(f))
				}
			})
		},
	}
	apply.Flags().StringVar(&text, "patch", "", "the unified diff")
	apply.Flags().StringVar(&file, "patch-file", "", "host file with the unified diff (- for stdin)")
	apply.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	patch.AddCommand(apply)
	return patch
}

func (a *app) wsSummary() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "summary ID", Short: "State, sizes, changed files since the baseline, last commands", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.SummarizeWorkspace(ctx, args[0])
			}, func(v any) {
				s := v.(*pyro.WorkspaceSummary)
				printWorkspace(a, &s.Workspace)
				fmt.Fprintf(a.stdout, "changes:     %d added, %d modified, %d deleted\n", s.Added, s.Modified, s.Deleted)
				for _, ch := range s.Changes {
					fmt.Fprintf(a.stdout, "  %-8s %s\n", ch.Status, printable(ch.Path))
				}
				for _, e := range s.LastCommands {
					fmt.Fprintf(a.stdout, "  #%d exit %d  %s\n", e.Sequence, e.ExitCode, printable(e.Command))
				}
			})
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}
