package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/cliexec"
)

func (a *app) wsShell() *cobra.Command {
	cmd := &cobra.Command{Use: "shell", Short: "Interactive PTY shells that live across calls"}
	cmd.AddCommand(a.shellOpen(), a.shellRead(), a.shellWrite(), a.shellSignal(), a.shellResize(), a.shellClose())
	return cmd
}

func (a *app) printShell(v any) {
	s := v.(*pyro.Shell)
	fmt.Fprintf(a.stdout, "shell:  %s (workspace %s)\nstate:  %s", s.ShellID, s.WorkspaceID, s.State)
	if s.ExitCode != nil {
		fmt.Fprintf(a.stdout, ", exit code %d", *s.ExitCode)
	}
	if s.Signal != "" {
		fmt.Fprintf(a.stdout, ", signal %s", s.Signal)
	}
	fmt.Fprintf(a.stdout, "\ncwd:    %s\nsize:   %dx%d\noutput: %d bytes\n", s.Cwd, s.Cols, s.Rows, s.OutputBytes)
}

func (a *app) shellOpen() *cobra.Command {
	var req pyro.OpenShellRequest
	var secretEnv []string
	var jsonOut, idOnly bool
	cmd := &cobra.Command{
		Use: "open ID", Short: "Open a login shell on a PTY (default 120x30)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Workspace = args[0]
			env, err := cliexec.ParseSecretEnv(secretEnv)
			if err != nil {
				return err // usage error
			}
			req.SecretEnv = env
			human := a.printShell
			if idOnly {
				human = func(v any) { fmt.Fprintln(a.stdout, v.(*pyro.Shell).ShellID) }
			}
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) { return c.OpenShell(ctx, req) }, human)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Cwd, "cwd", "", "starting directory, relative to /workspace (default /workspace)")
	f.IntVar(&req.Cols, "cols", 120, "terminal width")
	f.IntVar(&req.Rows, "rows", 30, "terminal height")
	addSecretEnvFlag(cmd, &secretEnv)
	f.BoolVar(&idOnly, "id-only", false, "print only the shell id")
	f.BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) shellRead() *cobra.Command {
	var req pyro.ReadShellRequest
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "read ID SHELL", Short: "Print a shell's output from --cursor; the next cursor goes to stderr", Args: cobra.ExactArgs(2),
		Example: "  pyro workspace shell read ws1 sh1 --plain --wait-for-idle-ms 500",
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Workspace, req.ShellID = args[0], args[1]
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) { return c.ReadShell(ctx, req) }, func(v any) {
				o := v.(*pyro.ShellOutput)
				fmt.Fprint(a.stdout, o.Output)
				if req.Plain && o.Output != "" {
					fmt.Fprintln(a.stdout)
				}
				note := fmt.Sprintf("[shell %s: %s, next cursor %d", o.ShellID, o.State, o.NextCursor)
				if o.ExitCode != nil {
					note += fmt.Sprintf(", exit code %d", *o.ExitCode)
				}
				if o.DroppedBytes > 0 {
					note += fmt.Sprintf(", %d older bytes dropped", o.DroppedBytes)
				}
				if o.More {
					note += ", more output waiting"
				}
				fmt.Fprintln(a.stderr, note+"]")
			})
		},
	}
	f := cmd.Flags()
	f.Int64Var(&req.Cursor, "cursor", 0, "byte offset to read from: 0, or the last next cursor")
	f.IntVar(&req.MaxChars, "max-chars", 65536, "at most this many characters")
	f.BoolVar(&req.Plain, "plain", false, "render the terminal: no escape sequences, \\r and backspaces applied")
	f.Int64Var(&req.WaitForIdleMs, "wait-for-idle-ms", 0, "first wait until the output has been quiet this long (30 s at most)")
	f.BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) shellWrite() *cobra.Command {
	var req pyro.WriteShellRequest
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "write ID SHELL --input TEXT", Short: "Type input into a shell (Enter added unless --no-newline)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Workspace, req.ShellID = args[0], args[1]
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) { return c.WriteShell(ctx, req) }, a.printShell)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Input, "input", "", "text to type")
	f.BoolVar(&req.NoNewline, "no-newline", false, "do not press Enter after the input")
	f.BoolVar(&jsonOut, "json", false, "print one JSON object")
	_ = cmd.MarkFlagRequired("input")
	return cmd
}

func (a *app) shellSignal() *cobra.Command {
	var signal string
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "signal ID SHELL --signal INT|TERM|HUP|KILL", Short: "Signal the shell's foreground program", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.SignalShell(ctx, pyro.SignalShellRequest{Workspace: args[0], ShellID: args[1], Signal: signal})
			}, a.printShell)
		},
	}
	cmd.Flags().StringVar(&signal, "signal", "INT", "INT, TERM, HUP or KILL")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) shellResize() *cobra.Command {
	var cols, rows int
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "resize ID SHELL --cols N --rows N", Short: "Change a shell's terminal size (its program gets SIGWINCH)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.ResizeShell(ctx, pyro.ResizeShellRequest{Workspace: args[0], ShellID: args[1], Cols: cols, Rows: rows})
			}, a.printShell)
		},
	}
	cmd.Flags().IntVar(&cols, "cols", 120, "terminal width")
	cmd.Flags().IntVar(&rows, "rows", 30, "terminal height")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) shellClose() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "close ID SHELL", Short: "Hang a shell up and end its programs", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.CloseShell(ctx, pyro.ShellRequest{Workspace: args[0], ShellID: args[1]})
			}, a.printShell)
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}
