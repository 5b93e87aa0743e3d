package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/cliexec"
)

// flagRanges are the numeric flags whose range the CLI checks itself, so
// that an out-of-range value is a usage error (exit 2) before anything runs.
var flagRanges = map[string][2]int64{
	"timeout-seconds":       cliexec.FlagRanges["timeout-seconds"],
	"vcpu-count":            {pyro.MinVCPUCount, pyro.MaxVCPUCount},
	"mem-mib":               {pyro.MinMemMiB, pyro.MaxMemMiB},
	"max-output-bytes":      cliexec.FlagRanges["max-output-bytes"],
	"max-bytes":             {1, pyro.MaxFileReadMaxBytes},
	"ttl-seconds":           {0, 30 * 24 * 3600},
	"ready-timeout-seconds": {1, pyro.MaxTimeoutSeconds},
	"tail-lines":            {0, 1 << 20},
	"idle-pause-seconds":    {0, 30 * 24 * 3600},
	"count":                 {1, pyro.MaxForkCount},
}

// checkFlagValues refuses a given value outside its flag's range or set
// (enumFlags; signal names are checked where they are parsed).
func checkFlagValues(cmd *cobra.Command) error {
	for name, values := range enumFlags {
		f := cmd.Flags().Lookup(name)
		if name == "signal" || f == nil || !f.Changed || slices.Contains(values, f.Value.String()) {
			continue
		}
		return fmt.Errorf("--%s %q is not one of %s", name, f.Value.String(), strings.Join(values, ", "))
	}
	return cliexec.CheckRanges(cmd.Flags(), flagRanges)
}
