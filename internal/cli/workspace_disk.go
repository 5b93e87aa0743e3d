package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/errdefs"
)

func (a *app) wsDisk() *cobra.Command {
	disk := &cobra.Command{Use: "disk", Short: "Read a stopped workspace's disk offline (list, read, export as raw ext4)",
		Long: "Read the disk of a stopped workspace without booting it. A running workspace is refused\n" +
			"(workspace_running): stop it first. The disk is never written; symlinks are never followed."}

	var listJSON, recursive bool
	list := &cobra.Command{
		Use: "list ID [PATH]", Short: "List a directory of a stopped workspace's disk", Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := ""
			if len(args) == 2 {
				p = args[1]
			}
			return a.wsRun(cmd, listJSON, func(ctx context.Context, c *pyro.Client) (any, error) {
				entries, err := c.ListDiskFiles(ctx, pyro.ListFilesRequest{Workspace: args[0], Path: p, Recursive: recursive})
				if err != nil {
					return nil, err
				}
				return map[string]any{"entries": entries}, nil
			}, func(v any) {
				for _, e := range v.(map[string]any)["entries"].([]pyro.FileEntry) {
					fmt.Fprintf(a.stdout, "%-7s %5s %10d  %s\n", e.Type, e.Mode, e.Size, printable(e.Path))
				}
			})
		},
	}
	list.Flags().BoolVar(&recursive, "recursive", false, "list the whole tree")
	list.Flags().BoolVar(&listJSON, "json", false, "print one JSON object")

	var readJSON, contentOnly bool
	var maxBytes int64
	read := &cobra.Command{
		Use: "read ID PATH", Short: "Print a file of a stopped workspace's disk", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, readJSON && !contentOnly, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.ReadDiskFile(ctx, pyro.ReadFileRequest{Workspace: args[0], Path: args[1], MaxBytes: maxBytes})
			}, func(v any) {
				f := v.(*pyro.FileContent)
				if !contentOnly {
					fmt.Fprintf(a.stderr, "# %s (%d bytes)\n", printable(f.Path), f.Size)
				}
				fmt.Fprint(a.stdout, f.Content)
			})
		},
	}
	read.Flags().Int64Var(&maxBytes, "max-bytes", pyro.DefaultFileReadMaxBytes, "refuse files larger than this")
	read.Flags().BoolVar(&contentOnly, "content-only", false, "print only the raw content")
	read.Flags().BoolVar(&readJSON, "json", false, "print one JSON object")

	var exportJSON bool
	var output string
	export := &cobra.Command{
		Use: "export ID --output FILE", Short: "Write a stopped workspace's whole disk as a raw ext4 image to a new host file", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return a.fail(cmd.Context(), errdefs.InvalidArgument("output", "is required: --output FILE"), exportJSON)
			}
			return a.wsRun(cmd, exportJSON, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.ExportDisk(ctx, pyro.ExportDiskRequest{Workspace: args[0], Output: output})
			}, func(v any) {
				r := v.(*pyro.DiskExportResult)
				fmt.Fprintf(a.stdout, "%s: %s image, %s (sparse)\n", r.HostPath, r.Format, humanBytes(r.Bytes))
			})
		},
	}
	export.Flags().StringVar(&output, "output", "", "host file to create (its parent must exist; it must not)")
	export.Flags().BoolVar(&exportJSON, "json", false, "print one JSON object")

	disk.AddCommand(list, read, export)
	return disk
}
