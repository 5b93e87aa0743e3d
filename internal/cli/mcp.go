package cli

import (
	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
	pyromcp "github.com/pyrovm/pyro/internal/mcp"
)

func (a *app) mcpCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "mcp", Short: "Serve pyro to MCP hosts (Claude Code, Codex, Cursor, ...)"}
	var profile string
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve the MCP protocol on stdio",
		Long:  "Serves pyro's tools over MCP on stdin/stdout. Profiles: vm-run (vm_run only), workspace-core, workspace-full.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := pyromcp.ParseProfile(profile)
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			// No progress renderer: stdout carries the protocol.
			c, err := pyro.New()
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			return pyromcp.ServeStdio(cmd.Context(), c, p, Version)
		},
	}
	serve.Flags().StringVar(&profile, "profile", string(pyromcp.ProfileWorkspaceCore), "tool profile: vm-run, workspace-core or workspace-full")
	cmd.AddCommand(serve)
	return cmd
}
