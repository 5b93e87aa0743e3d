// Command pyro is the pyro CLI. It runs `pyro workspace exec` on a
// workspace that needs nothing else itself (internal/fastexec: a small
// binary starts in a third of the time) and hands every other call to
// pyro-full, the complete CLI installed beside it, by exec: same process,
// same arguments, same terminal.
package main

import (
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/pyrovm/pyro/internal/cliexec"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fastexec"
)

// fullName is the complete CLI's binary.
const fullName = "pyro-full"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code, handled := fastexec.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if handled {
		os.Exit(code)
	}
	full, err := fullBinary()
	if err != nil {
		os.Exit(cliexec.PrintError(context.Background(), os.Stderr, errdefs.Wrap(err, errdefs.ErrFailedPrecondition, errdefs.CodeHostToolMissing,
			"this command runs in %s, the complete pyro CLI, which is not installed beside this pyro or on PATH: "+
				"install both from one build (make build, or go install github.com/pyrovm/pyro/cmd/...@VERSION)", fullName)))
	}
	err = syscall.Exec(full, os.Args, os.Environ())
	os.Exit(cliexec.PrintError(context.Background(), os.Stderr, errdefs.Wrap(err, errdefs.ErrFailedPrecondition, errdefs.CodeHostToolMissing,
		"this command runs in %s, the complete pyro CLI, and %s does not run: reinstall pyro (make build, or go install github.com/pyrovm/pyro/cmd/...@VERSION)", fullName, full)))
}

// fullBinary is pyro-full beside this executable, else on PATH.
func fullBinary() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), fullName)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return exec.LookPath(fullName)
}
