package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/cliexec"
)

func (a *app) runCommand() *cobra.Command {
	var req pyro.RunRequest
	var jsonOut, interactive bool
	var sec brokerFlags
	cmd := &cobra.Command{
		Use:   "run ENV [flags] -- CMD...",
		Short: "Run one command in a fresh microVM, then destroy it",
		Long: "Boots a fresh VM from ENV, runs CMD with /bin/sh -lc, prints its output and exits with its exit code\n" +
			"(124 on timeout, 125 when pyro itself failed). The VM is always destroyed.\n" +
			"One word after -- is taken as a shell string as is; several words are quoted and joined.\n" +
			"ENV is a catalog name or an OCI image reference (pulled on first use; see \"pyro env pull --help\").",
		Example: "  pyro run debian:12 -- uname -r\n  pyro run debian:12-build --timeout-seconds 60 -- 'cc --version | head -1'\n  pyro run python:3.12-slim -- python3 -V\n" +
			"  pyro run debian:12-build --network --secret-file GH_TOKEN=$HOME/.gh-token --secret-broker GH_TOKEN=api.github.com -- 'curl -H \"Authorization: Bearer $GH_TOKEN\" https://api.github.com/user'",
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return fmt.Errorf("usage: pyro run ENV [flags] -- CMD...")
			}
			if len(args) < 2 {
				return fmt.Errorf("no command given after --")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			req.Environment = args[0]
			req.Command = cliexec.ShellCommand(args[1:])
			var err error
			if req.Secrets, err = sec.secrets(); err != nil {
				return err // usage error
			}
			c, done, err := a.client(jsonOut)
			if err != nil {
				return a.fail(ctx, err, jsonOut)
			}
			live := a.liveIO(jsonOut, interactive)
			req.Stdout, req.Stderr, req.Stdin = live.stdout, live.stderr, live.stdin
			res, err := c.Run(ctx, req)
			done()
			if err != nil {
				return a.fail(ctx, err, jsonOut)
			}
			if !jsonOut {
				a.printRunBlocked(res.BlockedConnections)
			}
			return a.commandResult(jsonOut, res, live.left(res.Stdout), live.left(res.Stderr), !live.streamed() && (res.StdoutTruncated || res.StderrTruncated), res.TimedOut, res.ExitCode)
		},
	}
	f := cmd.Flags()
	f.IntVar(&req.VCPUCount, "vcpu-count", pyro.DefaultVCPUCount, fmt.Sprintf("virtual CPUs [%d-%d]", pyro.MinVCPUCount, pyro.MaxVCPUCount))
	f.IntVar(&req.MemMiB, "mem-mib", pyro.DefaultMemMiB, fmt.Sprintf("guest memory in MiB [%d-%d]", pyro.MinMemMiB, pyro.MaxMemMiB))
	f.IntVar(&req.TimeoutSeconds, "timeout-seconds", pyro.DefaultTimeoutSeconds, fmt.Sprintf("command timeout [1-%d]", pyro.MaxTimeoutSeconds))
	f.Int64Var(&req.MaxOutputBytes, "max-output-bytes", pyro.DefaultMaxOutputBytes, "cap for stdout and for stderr, each")
	f.BoolVar(&req.Network, "network", false, "give the guest outbound network access (NAT; never the host itself, its loopback services or link-local addresses)")
	addAllowFlags(f, &req.EgressRules, "allow only (with --network)")
	sec.add(f)
	f.BoolVarP(&interactive, "interactive", "i", false, "pass this terminal's stdin to the command (EOF closes it)")
	f.BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

// liveIO connects a command to the terminal: its output is printed as it
// comes (all of it: the cap only bounds the result), unless --json asks for
// one clean object; with -i it reads this process's stdin.
type liveIO struct {
	stdout, stderr io.Writer
	stdin          io.Reader
}

func (a *app) liveIO(jsonOut, interactive bool) liveIO {
	var l liveIO
	if !jsonOut {
		l.stdout, l.stderr = a.stdout, a.stderr
	}
	if interactive {
		l.stdin = a.stdin
	}
	return l
}

func (l liveIO) streamed() bool { return l.stdout != nil }

// left is what is still to print of a result's output: nothing once it
// was streamed.
func (l liveIO) left(s string) string {
	if l.streamed() {
		return ""
	}
	return s
}

// commandResult prints a guest command's outcome (its output, or the JSON
// object) and turns its exit code into pyro's.
func (a *app) commandResult(jsonOut bool, v any, stdout, stderr string, truncated, timedOut bool, exitCode int) error {
	if jsonOut {
		writeJSON(a.stdout, v)
	} else {
		cliexec.PrintOutput(a.stdout, a.stderr, stdout, stderr, truncated, timedOut)
	}
	if code := cliexec.CommandExit(exitCode); code != 0 {
		return exitError{code}
	}
	return nil
}
