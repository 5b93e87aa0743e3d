package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// wsRun wires the common shape of a workspace file command: build the
// client, call, print JSON or human text.
func (a *app) wsRun(cmd *cobra.Command, jsonOut bool, call func(context.Context, *pyro.Client) (any, error), human func(any)) error {
	ctx := cmd.Context()
	c, done, err := a.client(jsonOut)
	if err != nil {
		return a.fail(ctx, err, jsonOut)
	}
	defer done()
	v, err := call(ctx, c)
	if err != nil {
		return a.fail(ctx, err, jsonOut)
	}
	if jsonOut {
		writeJSON(a.stdout, v)
	} else {
		human(v)
	}
	return nil
}

func (a *app) printTransfer(v any) {
	t := v.(*pyro.TransferResult)
	fmt.Fprintf(a.stdout, "%s: %d entries, %s", printable(t.Path), t.Entries, humanBytes(t.Bytes))
	if t.HostPath != "" {
		fmt.Fprintf(a.stdout, " (host %s)", printable(t.HostPath))
	}
	if t.Skipped > 0 {
		fmt.Fprintf(a.stdout, ", %d special files skipped", t.Skipped)
	}
	fmt.Fprintln(a.stdout)
	a.printSkipped(0, t.SkippedFiles, "skipped")
}

// printSkipped lists the files a transfer left out on stderr (count > the
// list: a line says how many in all).
func (a *app) printSkipped(count int, files []pyro.SkippedFile, verb string) {
	for _, f := range files {
		fmt.Fprintf(a.stderr, "%s %s (%s)\n", verb, printable(f.Path), f.Reason)
	}
	if count > 0 {
		fmt.Fprintf(a.stderr, "%d special files %s (fifos, sockets, device nodes are not copied)\n", count, verb)
	}
}

func (a *app) wsSync() *cobra.Command {
	sync := &cobra.Command{Use: "sync", Short: "Copy host content into a running workspace"}
	var dest string
	var jsonOut bool
	push := &cobra.Command{
		Use: "push ID SRC", Short: "Copy a host directory or .tar/.tar.gz into /workspace (or --dest)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.SyncPush(ctx, pyro.SyncPushRequest{Workspace: args[0], Source: args[1], Dest: dest})
			}, a.printTransfer)
		},
	}
	push.Flags().StringVar(&dest, "dest", "/workspace", "guest directory to copy into (under /workspace)")
	push.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	sync.AddCommand(push)
	return sync
}

func (a *app) wsExport() *cobra.Command {
	var output string
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "export ID PATH --output HOST_PATH", Short: "Copy a workspace file or directory to a new host path", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return a.fail(cmd.Context(), errdefs.InvalidArgument("output", "is required: --output HOST_PATH"), jsonOut)
			}
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.ExportWorkspace(ctx, pyro.ExportWorkspaceRequest{Workspace: args[0], Path: args[1], Output: output})
			}, a.printTransfer)
		},
	}
	cmd.Flags().StringVar(&output, "output", "", "host path to create (its parent must exist)")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) wsFile() *cobra.Command {
	file := &cobra.Command{Use: "file", Short: "List, read and write files in /workspace"}

	var listJSON, recursive bool
	list := &cobra.Command{
		Use: "list ID [PATH]", Short: "List a workspace directory", Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := ""
			if len(args) == 2 {
				p = args[1]
			}
			return a.wsRun(cmd, listJSON, func(ctx context.Context, c *pyro.Client) (any, error) {
				entries, err := c.ListWorkspaceFiles(ctx, pyro.ListFilesRequest{Workspace: args[0], Path: p, Recursive: recursive})
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
		Use: "read ID PATH", Short: "Print a workspace file", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, readJSON && !contentOnly, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.ReadWorkspaceFile(ctx, pyro.ReadFileRequest{Workspace: args[0], Path: args[1], MaxBytes: maxBytes})
			}, func(v any) {
				f := v.(*pyro.FileContent)
				if !contentOnly {
					fmt.Fprintf(a.stderr, "# %s (%d bytes)\n", f.Path, f.Size)
				}
				fmt.Fprint(a.stdout, f.Content)
			})
		},
	}
	read.Flags().Int64Var(&maxBytes, "max-bytes", pyro.DefaultFileReadMaxBytes, "refuse files larger than this")
	read.Flags().BoolVar(&contentOnly, "content-only", false, "print only the raw content")
	read.Flags().BoolVar(&readJSON, "json", false, "print one JSON object")

	var writeOut bool
	var text, textFile string
	write := &cobra.Command{
		Use: "write ID PATH (--text T | --text-file F)", Short: "Create or replace a workspace file", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			content := []byte(text)
			switch {
			case text != "" && textFile != "":
				return a.fail(cmd.Context(), errdefs.InvalidArgument("text", "give --text or --text-file, not both"), writeOut)
			case textFile != "":
				b, err := os.ReadFile(textFile)
				if err != nil {
					return a.fail(cmd.Context(), errdefs.InvalidArgument("text_file", "%v", err), writeOut)
				}
				content = b
			case !cmd.Flags().Changed("text"):
				return a.fail(cmd.Context(), errdefs.InvalidArgument("text", "give --text or --text-file"), writeOut)
			}
			return a.wsRun(cmd, writeOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.WriteWorkspaceFile(ctx, pyro.WriteFileRequest{Workspace: args[0], Path: args[1], Content: content})
			}, a.printTransfer)
		},
	}
	write.Flags().StringVar(&text, "text", "", "the new content")
	write.Flags().StringVar(&textFile, "text-file", "", "host file with the new content")
	write.Flags().BoolVar(&writeOut, "json", false, "print one JSON object")

	file.AddCommand(list, read, write)
	return file
}
