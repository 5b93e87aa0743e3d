// Command pyro-supervisor runs one workspace's supervisor (internal/supervisor).
// pyro starts it as `pyro-supervisor __supervise SPEC`; it is a separate small
// binary so that every running workspace maps less host memory than the whole
// pyro CLI. Without it pyro runs `pyro __supervise SPEC` instead.
package main

import (
	"fmt"
	"os"

	"github.com/pyrovm/pyro/internal/supervisor"
)

func main() {
	if len(os.Args) != 3 || os.Args[1] != supervisor.SubcommandName {
		fmt.Fprintf(os.Stderr, "usage: %s %s SPEC (started by pyro, not by hand)\n", supervisor.BinaryName, supervisor.SubcommandName)
		os.Exit(2)
	}
	if supervisor.Serve(os.Args[2], os.Stderr) != nil {
		os.Exit(1)
	}
}
