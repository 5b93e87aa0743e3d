// Package cli is the pyro command tree: flags -> SDK call -> print (human
// text or one JSON object with --json). It holds no runtime logic.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/cliexec"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// Exit codes shared by every command (CONTRACT.md).
const (
	ExitUsage       = cliexec.ExitUsage
	ExitTimeout     = cliexec.ExitTimeout
	ExitPyroFailure = cliexec.ExitPyroFailure
	ExitInterrupted = cliexec.ExitInterrupted
)

// exitError carries an exit status out of a command without printing more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// app holds what the commands share.
type app struct {
	stdin          io.Reader // passed to commands by -i
	stdout, stderr io.Writer
	insecure       []string // --insecure-registry
}

// Main runs the CLI and returns the process exit status.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	root := a.commandFor(args)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if ctx.Err() != nil {
		fmt.Fprintln(a.stderr, "pyro: interrupted")
		return ExitInterrupted
	}
	// cobra's own errors (unknown flag, bad args) are usage errors.
	fmt.Fprintln(a.stderr, "pyro:", err)
	return ExitUsage
}

// rootCommand is the whole command tree.
func (a *app) rootCommand() *cobra.Command { return a.commandFor(nil) }

// commandFor is the command tree args need: when they start with a command
// word (`pyro workspace exec ...`), only the commands on its path are
// built, not the other ~130 with their flags (a good part of a CLI
// process's start); anything else (help, completion, a flag first, a word
// pyro does not know) gets the whole tree.
func (a *app) commandFor(args []string) *cobra.Command {
	root := &cobra.Command{
		Use:           "pyro",
		Short:         "Disposable Linux microVMs for coding agents",
		Long:          "pyro runs commands inside disposable Linux microVMs: one-shot runs and persistent workspaces,\nthrough this CLI, a Go SDK and an MCP server.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       cliexec.Version,
		// Out-of-range numbers and unknown enum values are usage errors (exit 2), caught before any work.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return checkFlagValues(cmd) },
	}
	root.PersistentFlags().StringArrayVar(&a.insecure, "insecure-registry", nil,
		"registry HOST[:PORT] that may be reached over plain HTTP when pulling or pushing (repeatable; also PYRO_INSECURE_REGISTRIES)")
	root.SetVersionTemplate(cliexec.VersionLine())
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	addChildren(root, args, []child{{"run", leaf(a.runCommand)}, {"env", leaf(a.envCommand)},
		{"doctor", leaf(a.doctorCommand)}, {"prepare", leaf(a.prepareCommand)}, {"mcp", leaf(a.mcpCommand)},
		{"bench", leaf(a.benchCommand)}, {"workspace ws", a.workspaceCommand}, {"__supervise", leaf(a.superviseCommand)},
		{"host", leaf(a.hostCommand)}, {"vm", leaf(a.vmCommand)}, {"demo", leaf(a.demoCommand)}})
	refuseUnknownSubcommands(root)
	a.addCompletions(root)
	return root
}

// child is a subcommand and its names (name and aliases, space-separated;
// TestChildNames keeps them equal to the built command's), built by make
// from the words after its name.
type child struct {
	names string
	make  func(rest []string) *cobra.Command
}

// addChildren adds to cmd the child args[0] names, or every child when it
// names none.
func addChildren(cmd *cobra.Command, args []string, children []child) {
	if len(args) > 0 {
		for _, c := range children {
			if slices.Contains(strings.Fields(c.names), args[0]) {
				cmd.AddCommand(c.make(args[1:]))
				return
			}
		}
	}
	for _, c := range children {
		cmd.AddCommand(c.make(nil))
	}
}

// leaf adapts a constructor without children of its own to child.make.
func leaf(f func() *cobra.Command) func([]string) *cobra.Command {
	return func([]string) *cobra.Command { return f() }
}

// refuseUnknownSubcommands makes every command group (`workspace`, `vm`,
// ...) fail with a usage error on a word it does not know, instead of
// printing its help and exiting 0; without a word it prints its help.
func refuseUnknownSubcommands(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if !cmd.HasSubCommands() || cmd.Runnable() || cmd.Parent() == nil {
		return
	}
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unknown command %q for %q; run %q", args[0], c.CommandPath(), c.CommandPath()+" --help")
		}
		return c.Help()
	}
}

// client builds the SDK client, with terminal progress when attached to one.
func (a *app) client(jsonOut bool) (*pyro.Client, func(), error) {
	p := newProgress(a.stderr)
	c, err := pyro.New(pyro.WithProgress(p.event), pyro.WithLogger(logger(a.stderr)), pyro.WithInsecureRegistries(a.insecure...))
	return c, p.done, err
}

// logger writes diagnostics to stderr when PYRO_LOG is set (debug, info, warn).
func logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	switch os.Getenv("PYRO_LOG") {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	case "warn":
		lvl = slog.LevelWarn
	default:
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// fail prints err as pyro's one clear line (or a JSON error object) and
// returns the exit status for it.
func (a *app) fail(ctx context.Context, err error, jsonOut bool) error {
	if jsonOut {
		writeJSON(a.stdout, map[string]any{"error": map[string]string{
			"code": errdefs.CodeOf(err), "message": err.Error(),
		}})
	}
	return exitError{cliexec.PrintError(ctx, a.stderr, err)}
}

// cliBinary is the pyro CLI users run: the pyro beside this pyro-full
// (what host configs name, and what the bench times: a user's call,
// hand-off included), else this binary.
func cliBinary() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	if p := filepath.Join(filepath.Dir(self), "pyro"); p != self {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return self, nil
}
