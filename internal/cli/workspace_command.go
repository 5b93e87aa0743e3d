package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
)

func (a *app) wsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "command", Short: "Background commands (exec --background) and recent commands: status, logs by cursor, wait, kill"}
	cmd.AddCommand(a.commandList(), a.commandStatus(), a.commandLogs(), a.commandWait(), a.commandKill())
	return cmd
}

func (a *app) printCommand(v any) {
	c := v.(*pyro.WorkspaceCommand)
	kind := "foreground"
	if c.Background {
		kind = "background"
	}
	fmt.Fprintf(a.stdout, "command: %s (workspace %s, %s)\nstate:   %s", c.CommandID, c.WorkspaceID, kind, c.State)
	if c.ExitCode != nil {
		fmt.Fprintf(a.stdout, ", exit code %d", *c.ExitCode)
	}
	if c.Signal != "" {
		fmt.Fprintf(a.stdout, ", signal %s", c.Signal)
	}
	if c.Error != "" {
		fmt.Fprintf(a.stdout, " (%s)", c.Error)
	}
	fmt.Fprintf(a.stdout, "\nrun:     %s\noutput:  %d bytes stdout, %d bytes stderr\n", c.Command, c.StdoutBytes, c.StderrBytes)
}

// exitOf is the CLI's exit status for a command: its own once it ended,
// 124 while it still runs (the wait timed out).
func exitOf(c *pyro.WorkspaceCommand) error {
	switch {
	case c.State == pyro.CommandRunning:
		return exitError{pyro.TimeoutExitCode}
	case c.ExitCode != nil && *c.ExitCode != 0:
		return exitError{*c.ExitCode & 0xff}
	case c.State == pyro.CommandFailed:
		return exitError{125}
	}
	return nil
}

// commandList is `command list --json`: one object, as every --json prints.
type commandList struct {
	Commands []pyro.WorkspaceCommand `json:"commands"`
}

func (a *app) commandList() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "list ID", Short: "List a running workspace's background commands and its newest finished commands", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				l, err := c.ListCommands(ctx, args[0])
				return commandList{l}, err
			}, func(v any) {
				l := v.(commandList).Commands
				if len(l) == 0 {
					fmt.Fprintln(a.stdout, "no commands")
				}
				for _, c := range l {
					code := "-"
					if c.ExitCode != nil {
						code = fmt.Sprint(*c.ExitCode)
					}
					fmt.Fprintf(a.stdout, "%s  %-9s  exit %-3s  %s\n", c.CommandID, c.State, code, c.Command)
				}
			})
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) commandStatus() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "status ID CMD_ID", Short: "Show a command's state, exit code and output sizes", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.CommandStatus(ctx, pyro.CommandRequest{Workspace: args[0], CommandID: args[1]})
			}, a.printCommand)
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) commandLogs() *cobra.Command {
	var req pyro.CommandLogsRequest
	var jsonOut, follow bool
	cmd := &cobra.Command{
		Use:   "logs ID CMD_ID [--cursor N] [--stderr-cursor N] [--follow]",
		Short: "Print a command's output from cursors; the next cursors go to stderr",
		Long: "Prints stdout from --cursor and stderr from --stderr-cursor (0: the start), at most --max-bytes of each,\n" +
			"and a note on stderr with the next cursors to pass. --follow prints the output as it comes until the\n" +
			"command ends, then exits with its exit code. Each stream keeps its newest 4 MiB: output before that is\n" +
			"reported as dropped.",
		Example: "  pyro workspace command logs ws1 4f2a9c --follow\n  pyro workspace command logs ws1 4f2a9c --cursor 1024 --stderr-cursor 0",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Workspace, req.CommandID = args[0], args[1]
			if follow && jsonOut {
				return fmt.Errorf("--follow prints output as it comes: it does not go with --json")
			}
			if follow {
				return a.followCommand(cmd, req)
			}
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) { return c.CommandLogs(ctx, req) }, func(v any) {
				l := v.(*pyro.CommandLogs)
				fmt.Fprint(a.stdout, l.Stdout)
				fmt.Fprint(a.stderr, l.Stderr)
				note := fmt.Sprintf("[command %s: %s, next --cursor %d --stderr-cursor %d", l.CommandID, l.State, l.NextCursor, l.NextStderrCursor)
				if l.ExitCode != nil {
					note += fmt.Sprintf(", exit code %d", *l.ExitCode)
				}
				if d := l.StdoutDroppedBytes + l.StderrDroppedBytes; d > 0 {
					note += fmt.Sprintf(", %d older bytes dropped", d)
				}
				if l.More {
					note += ", more waiting"
				}
				fmt.Fprintln(a.stderr, note+"]")
			})
		},
	}
	f := cmd.Flags()
	f.Int64Var(&req.Cursor, "cursor", 0, "stdout offset to read from (next_cursor of the last read)")
	f.Int64Var(&req.StderrCursor, "stderr-cursor", 0, "stderr offset to read from (next_stderr_cursor of the last read)")
	f.IntVar(&req.MaxBytes, "max-bytes", 0, "at most this many bytes of each stream (default 64 KiB, at most 1 MiB)")
	f.BoolVar(&follow, "follow", false, "print output as it comes until the command ends; exit with its exit code")
	f.BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

// followPoll is how often --follow asks for new output when there was none.
const followPoll = 200 * time.Millisecond

func (a *app) followCommand(cmd *cobra.Command, req pyro.CommandLogsRequest) error {
	ctx := cmd.Context()
	c, done, err := a.client(false)
	if err != nil {
		return a.fail(ctx, err, false)
	}
	defer done()
	req.MaxBytes = 1 << 20
	for {
		l, err := c.CommandLogs(ctx, req)
		if err != nil {
			return a.fail(ctx, err, false)
		}
		fmt.Fprint(a.stdout, l.Stdout)
		fmt.Fprint(a.stderr, l.Stderr)
		if d := l.StdoutDroppedBytes + l.StderrDroppedBytes; d > 0 {
			fmt.Fprintf(a.stderr, "\npyro: %d bytes of output were dropped (each stream keeps its newest %d)\n", d, pyro.CommandLogBytes)
		}
		req.Cursor, req.StderrCursor = l.NextCursor, l.NextStderrCursor
		if l.More {
			continue
		}
		if l.State != pyro.CommandRunning {
			return exitOf(&l.WorkspaceCommand)
		}
		select {
		case <-time.After(followPoll):
		case <-ctx.Done():
			return a.fail(ctx, ctx.Err(), false)
		}
	}
}

func (a *app) commandWait() *cobra.Command {
	var req pyro.WaitCommandRequest
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "wait ID CMD_ID [--timeout-seconds N]",
		Short: "Wait until a command ends (at most --timeout-seconds); exit with its exit code, 124 if it still runs",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Workspace, req.CommandID = args[0], args[1]
			var res *pyro.WorkspaceCommand
			err := a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				r, err := c.WaitCommand(ctx, req)
				res = r
				return r, err
			}, a.printCommand)
			if err != nil || res == nil {
				return err
			}
			return exitOf(res)
		},
	}
	cmd.Flags().IntVar(&req.TimeoutSeconds, "timeout-seconds", pyro.DefaultWaitSeconds, fmt.Sprintf("wait at most this long [1-%d]", pyro.MaxWaitSeconds))
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) commandKill() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "kill ID CMD_ID", Short: "Kill a running command's process group and wait for it to end", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.KillCommand(ctx, pyro.CommandRequest{Workspace: args[0], CommandID: args[1]})
			}, a.printCommand)
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}
