package cli

import (
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
	pyromcp "github.com/pyrovm/pyro/internal/mcp"
)

func (a *app) mcpCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "mcp", Short: "Serve pyro to MCP hosts (Claude Code, Codex, Cursor, ...)"}
	var profile, httpAddr, projectPath string
	var noNetwork bool
	var allowRemote bool
	var allowPull []string
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve the MCP protocol on stdio (default) or Streamable HTTP",
		Long: "Serves pyro's tools over MCP on stdin/stdout, or with --http ADDR over Streamable HTTP at http://ADDR/mcp\n" +
			"(loopback only unless --allow-remote; bearer token from PYRO_MCP_TOKEN, else generated into a 0600 file\n" +
			"whose path is printed). Profiles: vm-run (vm_run only), workspace-core, workspace-full.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := pyromcp.ParseProfile(profile)
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			// No progress renderer: stdout carries the protocol.
			c, err := pyro.New(pyro.WithInsecureRegistries(a.insecure...), pyro.WithAllowPull(allowPull...))
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			cfg := pyromcp.Config{Profile: p, Version: Version, ProjectPath: projectPath, NoNetwork: noNetwork}
			if !cmd.Flags().Changed("project-path") {
				if wd, err := os.Getwd(); err == nil {
					cfg.ProjectPath = pyro.GitToplevel(cmd.Context(), wd)
				}
			}
			if httpAddr == "" {
				return pyromcp.ServeStdio(cmd.Context(), c, cfg)
			}
			err = pyromcp.ServeHTTP(cmd.Context(), c, cfg, pyromcp.HTTPOptions{
				Addr: httpAddr, AllowRemote: allowRemote, Token: os.Getenv("PYRO_MCP_TOKEN"),
				TokenFile: filepath.Join(c.StateDir(), "mcp-token"), Log: a.stderr,
			})
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			return nil
		},
	}
	serve.Flags().StringVar(&httpAddr, "http", "", "serve Streamable HTTP on this loopback HOST:PORT instead of stdio")
	serve.Flags().StringVar(&projectPath, "project-path", "", "Git checkout workspace_create seeds from when no seed_path is given (default: the checkout the server starts in)")
	serve.Flags().BoolVar(&allowRemote, "allow-remote", false, "allow a non-loopback --http address")
	serve.Flags().BoolVar(&noNetwork, "no-network", false, "refuse every call that asks for a guest network (vm_run network, network_policy other than off)")
	serve.Flags().StringArrayVar(&allowPull, "allow-pull", nil,
		"image references a model may have pulled on first use: a glob on the normalized reference, e.g. 'docker.io/library/python:*' ('*' stops at '/'; repeatable). Default: none, only local environments")
	serve.Flags().StringVar(&profile, "profile", string(pyromcp.ProfileWorkspaceCore), "tool profile: vm-run, workspace-core or workspace-full")
	cmd.AddCommand(serve)
	return cmd
}
