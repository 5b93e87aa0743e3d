package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func (a *app) envCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "env", Short: "List, build, inspect and prune environments"}
	cmd.AddCommand(a.envListCommand(), a.envPullCommand("pull"), a.envPullCommand("build"), a.envInspectCommand(), a.envPruneCommand())
	return cmd
}

func (a *app) envListCommand() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "list", Short: "Show the environment catalog and what is installed", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := a.client(jsonOut)
			if err != nil {
				return a.fail(cmd.Context(), err, jsonOut)
			}
			defer done()
			envs, err := c.ListEnvironments(cmd.Context())
			if err != nil {
				return a.fail(cmd.Context(), err, jsonOut)
			}
			if jsonOut {
				writeJSON(a.stdout, map[string]any{"environments": envs})
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tINSTALLED\tVERSION\tDESCRIPTION")
			for _, e := range envs {
				inst := "no"
				if e.Installed {
					inst = "yes"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, inst, dash(e.Version), e.Description)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) envPullCommand(verb string) *cobra.Command {
	var jsonOut, force bool
	short := "Build (or verify and repair) environments locally from Debian packages"
	if verb == "build" {
		short = "Same as pull: build environments locally from Debian packages"
	}
	cmd := &cobra.Command{
		Use: verb + " ENV...", Short: short, Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := a.client(jsonOut)
			if err != nil {
				return a.fail(cmd.Context(), err, jsonOut)
			}
			defer done()
			var out []any
			for _, name := range args {
				m, err := c.PullEnvironment(cmd.Context(), name, force)
				if err != nil {
					return a.fail(cmd.Context(), err, jsonOut)
				}
				out = append(out, m)
				if !jsonOut {
					fmt.Fprintf(a.stdout, "%s %s ready (rootfs %s, %d packages)\n", m.Name, m.Version, humanBytes(m.Rootfs.Size), len(m.Packages))
				}
			}
			if jsonOut {
				writeJSON(a.stdout, map[string]any{"environments": out})
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	cmd.Flags().BoolVar(&force, "force", false, "rebuild from scratch even if installed and intact")
	return cmd
}

func (a *app) envInspectCommand() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "inspect ENV", Short: "Show an installed environment's manifest", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := a.client(jsonOut)
			if err != nil {
				return a.fail(cmd.Context(), err, jsonOut)
			}
			defer done()
			m, err := c.InspectEnvironment(cmd.Context(), args[0])
			if err != nil {
				return a.fail(cmd.Context(), err, jsonOut)
			}
			if jsonOut {
				writeJSON(a.stdout, m)
				return nil
			}
			fmt.Fprintf(a.stdout, "name:     %s\nversion:  %s\ncreated:  %s\n", m.Name, m.Version, m.CreatedAt.Format("2006-01-02 15:04:05Z07:00"))
			fmt.Fprintf(a.stdout, "kernel:   %s (%s, sha256 %s)\n", m.Kernel.Release, humanBytes(m.Kernel.Size), m.Kernel.SHA256)
			fmt.Fprintf(a.stdout, "rootfs:   %s (sha256 %s)\n", humanBytes(m.Rootfs.Size), m.Rootfs.SHA256)
			fmt.Fprintf(a.stdout, "agent:    sha256 %s\n", m.AgentSHA256)
			fmt.Fprintf(a.stdout, "packages: %d\n  %s\n", len(m.Packages), strings.Join(m.Packages, "\n  "))
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) envPruneCommand() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "prune", Short: "Remove cached environments, kernels and leftovers nothing uses", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := a.client(jsonOut)
			if err != nil {
				return a.fail(cmd.Context(), err, jsonOut)
			}
			defer done()
			r, err := c.PruneEnvironments(cmd.Context())
			if err != nil {
				return a.fail(cmd.Context(), err, jsonOut)
			}
			if jsonOut {
				writeJSON(a.stdout, r)
				return nil
			}
			for _, it := range r.Removed {
				fmt.Fprintln(a.stdout, "removed", it.Path)
			}
			fmt.Fprintf(a.stdout, "freed %s\n", humanBytes(r.BytesFreed))
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
