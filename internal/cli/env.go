package cli

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/errdefs"
)

func (a *app) envCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "env", Short: "List, build, inspect and prune environments"}
	cmd.AddCommand(a.envListCommand(), a.envPullCommand("pull"), a.envBuildCommand(), a.envInspectCommand(), a.envPruneCommand(), a.envPushCommand())
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
			fmt.Fprintln(tw, "NAME\tSOURCE\tINSTALLED\tVERSION\tDIGEST\tSIZE\tDESCRIPTION")
			for _, e := range envs {
				inst, size := "no", "-"
				if e.Installed {
					inst = "yes"
				}
				if e.RootfsSize > 0 {
					size = humanBytes(e.DiskUsage) + " of " + humanBytes(e.RootfsSize)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, e.Source, inst, dash(e.Version), dash(shortDigest(e.Digest)), size, e.Description)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) envPullCommand(verb string) *cobra.Command {
	var jsonOut, force bool
	var diskSize string
	short := "Build catalog environments from Debian packages, or pull OCI images as environments"
	long := "ENV is a catalog name (debian:12, debian:12-base, debian:12-build: built locally, or verified\n" +
		"and repaired when installed) or an image reference: python:3.12-slim, docker.io/library/node:22,\n" +
		"registry.example.com/team/img@sha256:..., oci-layout:DIR[:TAG] or docker-archive:FILE.tar.\n" +
		"An image is fetched for linux/amd64 (credentials from the Docker config), its layers flattened,\n" +
		"pyro's agent added, and made into an ext4 image; pulling an unchanged digest again does nothing."
	if verb == "build" {
		short = "Same as pull (kept for scripts): build or pull environments"
	}
	cmd := &cobra.Command{
		Use: verb + " ENV...", Short: short, Long: long, Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := a.client(jsonOut)
			if err != nil {
				return a.fail(cmd.Context(), err, jsonOut)
			}
			defer done()
			var size int64
			if diskSize != "" {
				if size, err = parseSize(diskSize); err != nil {
					return a.fail(cmd.Context(), err, jsonOut)
				}
			}
			var out []any
			for _, name := range args {
				m, err := c.PullEnvironment(cmd.Context(), pyro.PullEnvironmentRequest{Environment: name, Force: force, DiskSize: size})
				if err != nil {
					return a.fail(cmd.Context(), err, jsonOut)
				}
				out = append(out, m)
				if jsonOut {
					continue
				}
				if m.Image != nil {
					fmt.Fprintf(a.stdout, "%s %s ready (%s, %d layers, rootfs %s)\n", m.Name, m.Version, m.Digest, len(m.Image.Layers), humanBytes(m.Rootfs.Size))
				} else {
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
	cmd.Flags().StringVar(&diskSize, "disk-size", "", "image environments: root filesystem size, e.g. 4G or 512M (sparse; default: content plus headroom)")
	return cmd
}

func (a *app) envPushCommand() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "push ENV REF",
		Short: "Publish an installed environment to a registry as a pyro environment artifact",
		Long: "Pushes ENV (a catalog name or a pulled reference, as installed here) to REF, a registry tag,\n" +
			"as an OCI artifact: guest kernel, root filesystem and manifest (docs/environments.md).\n" +
			"\"pyro env pull REF\" installs it as is. Publish the catalog once under one prefix and point\n" +
			"every host at it with PYRO_ENV_REGISTRY, e.g.\n" +
			"  pyro env push debian:12 registry.example.com/pyro/debian:12\n" +
			"  PYRO_ENV_REGISTRY=registry.example.com/pyro pyro run debian:12 -- uname -r\n" +
			"Credentials come from the Docker config (docker login). Not offered over MCP: publishing is an operator's act.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := a.client(jsonOut)
			if err != nil {
				return a.fail(cmd.Context(), err, jsonOut)
			}
			defer done()
			r, err := c.PushEnvironment(cmd.Context(), pyro.PushEnvironmentRequest{Environment: args[0], Reference: args[1]})
			if err != nil {
				return a.fail(cmd.Context(), err, jsonOut)
			}
			if jsonOut {
				writeJSON(a.stdout, r)
				return nil
			}
			fmt.Fprintf(a.stdout, "%s %s pushed to %s@%s (kernel %s, rootfs %s compressed)\n",
				r.Environment, r.Version, r.Reference, r.Digest, humanBytes(r.KernelBytes), humanBytes(r.RootfsBytes))
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
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
			if p := m.Published; p != nil {
				fmt.Fprintf(a.stdout, "published: %s@%s (%s %s, built %s)\n", p.Reference, p.Digest, p.Name, p.Version, p.BuiltAt.Format("2006-01-02 15:04:05Z07:00"))
			}
			if m.Build != nil {
				a.printBuild(m)
			}
			if m.Image == nil && m.Build == nil {
				fmt.Fprintf(a.stdout, "packages: %d\n  %s\n", len(m.Packages), strings.Join(m.Packages, "\n  "))
				return nil
			}
			if m.Image == nil {
				return nil
			}
			a.printImage(m)
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

func (a *app) printImage(m *pyro.EnvironmentManifest) {
	im := m.Image
	if m.Build != nil { // the base's image: its config still applies
		fmt.Fprintf(a.stdout, "image:    %s\nplatform: %s\n", m.Reference, im.Platform)
	} else {
		fmt.Fprintf(a.stdout, "source:   %s\ndigest:   %s\nplatform: %s\n", m.Reference, m.Digest, im.Platform)
	}
	fmt.Fprintf(a.stdout, "layers:   %d\n", len(im.Layers))
	for _, l := range im.Layers {
		fmt.Fprintf(a.stdout, "  %s  %s  %s\n", l.Digest, humanBytes(l.Size), l.MediaType)
	}
	c := im.Config
	fmt.Fprintf(a.stdout, "config:\n  working_dir: %s\n  user:        %s\n", dash(c.WorkingDir), dash(c.User))
	fmt.Fprintf(a.stdout, "  entrypoint:  %s\n  cmd:         %s\n", dash(strings.Join(c.Entrypoint, " ")), dash(strings.Join(c.Cmd, " ")))
	fmt.Fprintf(a.stdout, "  env:\n")
	for _, e := range c.Env {
		fmt.Fprintf(a.stdout, "    %s\n", e)
	}
	for _, s := range im.Skipped {
		fmt.Fprintf(a.stdout, "skipped:  %s\n", s)
	}
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// parseSize reads "4G", "512M", "1.5GiB" or a byte count (binary units).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 {
		return 0, errdefs.InvalidArgument("disk_size", "%q is not a size: use e.g. 4G, 512M or a byte count", s)
	}
	return int64(f * float64(mult)), nil
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
