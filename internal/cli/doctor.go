package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
)

func (a *app) doctorCommand() *cobra.Command {
	var jsonOut bool
	var environments []string
	cmd := &cobra.Command{
		Use: "doctor", Short: "Check the host: accelerator, VMM, tools, caches, environment readiness, and one probe boot", Args: cobra.NoArgs,
		Example: "  pyro doctor\n  pyro doctor --environment debian:12-build   # exit 1 unless it is warm, with the command that warms it",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := a.client(jsonOut)
			if err != nil {
				return a.fail(cmd.Context(), err, jsonOut)
			}
			defer done()
			r, err := c.Doctor(cmd.Context(), pyro.DoctorRequest{Environments: environments})
			if err != nil {
				return a.fail(cmd.Context(), err, jsonOut)
			}
			if jsonOut {
				writeJSON(a.stdout, r)
			} else {
				w := a.stdout
				fmt.Fprintf(w, "platform:     %s/%s, host kernel %s, %d CPUs, %d MiB\n", r.Platform.OS, r.Platform.Arch, r.Platform.HostKernel, r.Platform.CPUs, r.Platform.MemTotalMiB)
				fmt.Fprintf(w, "accelerator:  %s (/dev/kvm present: %v, usable: %v)\n              %s\n", dash(r.Accelerator.Mode), r.Accelerator.KVMDevice, r.Accelerator.KVMUsable, r.Accelerator.Reason)
				if r.Accelerator.GuestClock != "" {
					fmt.Fprintf(w, "guest clock:  %s\n", r.Accelerator.GuestClock)
				}
				for _, t := range r.Tools {
					state := "ok"
					if !t.OK {
						state = "MISSING: apt-get install -y " + t.Package
					}
					fmt.Fprintf(w, "tool:         %-20s %s\n", t.Name, state)
				}
				fmt.Fprintf(w, "kernel:       built=%v %s %s\n", r.Kernel.Built, r.Kernel.Release, r.Kernel.Path)
				for _, e := range r.Environments {
					fmt.Fprintf(w, "environment:  %-16s installed=%v %s\n", e.Name, e.Installed, e.Version)
				}
				for _, rd := range r.Readiness {
					line := fmt.Sprintf("readiness:    %-16s %-7s", rd.Environment, rd.State)
					if rd.Reason != "" {
						line += " " + rd.Reason
					}
					if rd.Fix != "" {
						line += " (run: " + rd.Fix + ")"
					}
					fmt.Fprintln(w, line)
				}
				fmt.Fprintf(w, "networking:   policies %s (%s)\n", strings.Join(r.Networking.Policies, ", "), r.Networking.Note)
				fmt.Fprintf(w, "state dir:    %s (writable: %v)\ncache dir:    %s (writable: %v)\n", r.StateDir.Path, r.StateDir.Writable, r.CacheDir.Path, r.CacheDir.Writable)
				fmt.Fprintf(w, "supervisor:   %s\n", r.Supervisor)
				fmt.Fprintf(w, "env registry: %s\n", dash(r.EnvRegistry))
				fmt.Fprintf(w, "mcp exports:  %s (where `pyro mcp serve` lets a model export files)\n", r.MCPExportsDir)
				if r.Probe.Ran {
					fmt.Fprintf(w, "probe boot:   ok=%v %s boot %d ms, total %d ms, guest kernel %s %s\n", r.Probe.OK, r.Probe.ExecutionMode, r.Probe.BootMs, r.Probe.DurationMs, r.Probe.GuestKernel, r.Probe.Error)
				}
				for _, p := range r.Problems {
					fmt.Fprintln(w, "problem:     ", p)
				}
			}
			if !r.OK {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	cmd.Flags().StringArrayVar(&environments, "environment", nil, "report this environment's readiness (warm, cold, stale, missing) and count it as a problem unless warm (repeatable)")
	return cmd
}
