// Package cliexec is `pyro workspace exec` on the command line: its flags,
// the command words, and how its outcome prints, shared by the full CLI
// (internal/cli) and its fast path (internal/fastexec) so that both read
// and print alike. It links only pflag and pyro's light packages.
package cliexec

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/guestexec"
)

// Version is set at build time, in both pyro and pyro-full, with
// -ldflags "-X .../internal/cliexec.Version=...".
var Version = "dev"

// VersionLine is what `pyro --version` prints.
func VersionLine() string { return "pyro version " + Version + "\n" }

// Exit codes shared by every command (CONTRACT.md).
const (
	ExitUsage       = 2
	ExitTimeout     = guestexec.TimeoutExitCode
	ExitPyroFailure = 125
	ExitInterrupted = 130
)

// Flags are the flags of `workspace exec`.
type Flags struct {
	TimeoutSeconds int
	MaxOutputBytes int64
	Env            []string
	Workdir        string
	Background     bool
	Interactive    bool
	SecretEnv      []string
	JSON           bool
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *pflag.FlagSet) {
	fs.IntVar(&f.TimeoutSeconds, "timeout-seconds", guestexec.DefaultTimeoutSeconds, "command timeout")
	fs.Int64Var(&f.MaxOutputBytes, "max-output-bytes", guestexec.DefaultMaxOutputBytes, "cap for stdout and for stderr, each")
	fs.StringArrayVar(&f.Env, "env", nil, "set an environment variable of this command: NAME=VALUE (repeatable; use --secret-env for secrets)")
	fs.StringVar(&f.Workdir, "workdir", "", "run in this directory: relative to /workspace (default) or absolute under it")
	fs.BoolVar(&f.Background, "background", false, "start the command and print its command id at once; follow it with \"pyro workspace command\" (no timeout unless --timeout-seconds is given)")
	fs.BoolVarP(&f.Interactive, "interactive", "i", false, "pass this terminal's stdin to the command (EOF closes it)")
	fs.StringArrayVar(&f.SecretEnv, "secret-env", nil, SecretEnvFlagHelp)
	fs.BoolVar(&f.JSON, "json", false, "print one JSON object")
}

// PrintOutput prints a guest command's output that was not streamed, and
// the notes on its truncation and timeout, as text.
func PrintOutput(stdout, stderr io.Writer, out, errOut string, truncated, timedOut bool) {
	fmt.Fprint(stdout, out)
	fmt.Fprint(stderr, errOut)
	if truncated {
		fmt.Fprintln(stderr, "pyro: output was truncated at the output cap (--max-output-bytes)")
	}
	if timedOut {
		fmt.Fprintln(stderr, "pyro: timeout: the command did not finish within --timeout-seconds and was killed")
	}
}

// CommandExit is pyro's exit status for a guest command's exit code.
func CommandExit(exitCode int) int { return exitCode & 0xff }

// PrintError prints err as pyro's one clear line and returns the exit
// status for it: 130 when ctx was interrupted, else 125.
func PrintError(ctx context.Context, stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "pyro: %s: %s\n", errdefs.CodeOf(err), err.Error())
	if ctx.Err() != nil && errdefs.IsCanceled(err) {
		return ExitInterrupted
	}
	return ExitPyroFailure
}

// FlagRanges are the ranges of exec's numeric flags: a value outside is a
// usage error (exit 2) before anything runs.
var FlagRanges = map[string][2]int64{
	"timeout-seconds":  {1, guestexec.MaxTimeoutSeconds},
	"max-output-bytes": {0, guestexec.MaxMaxOutputBytes},
}

// CheckRanges refuses a given value of fs outside its flag's range.
func CheckRanges(fs *pflag.FlagSet, ranges map[string][2]int64) error {
	for name, r := range ranges {
		f := fs.Lookup(name)
		if f == nil || !f.Changed {
			continue
		}
		v, err := strconv.ParseInt(f.Value.String(), 10, 64)
		if err != nil {
			continue // the flag set reports a non-number itself
		}
		if v < r[0] || v > r[1] {
			return fmt.Errorf("--%s %d is out of range [%d, %d]", name, v, r[0], r[1])
		}
	}
	return nil
}
