package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/cliexec"
	"github.com/pyrovm/pyro/internal/errdefs"
	pyromcp "github.com/pyrovm/pyro/internal/mcp"
)

func (a *app) mcpCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "mcp", Short: "Serve pyro to MCP hosts (Claude Code, Codex, Cursor, ...)"}
	var profile, mode, httpAddr, projectPath, exportsDir, tokenFile, repoURL, repoRef string
	var noProjectSource bool
	var hostPaths []string
	var noNetwork, allowNetworkChanges bool
	var ttlSeconds int
	var allowRemote bool
	var allowPull []string
	var allowBuild bool
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve the MCP protocol on stdio (default) or Streamable HTTP",
		Long: "Serves pyro's tools over MCP on stdin/stdout, or with --http ADDR over Streamable HTTP at http://ADDR/mcp\n" +
			"(loopback only unless --allow-remote; bearer token from PYRO_MCP_TOKEN, else the one kept in --token-file,\n" +
			"made there once (0600) and reused on every restart). Profiles: vm-run (vm_run only), workspace-core, workspace-full.\n" +
			"Task modes (--mode, instead of a profile) offer only the tools one kind of task needs, with instructions for it:\n" +
			"repro-fix, inspect (nothing written to the host), cold-start, review-eval.\n\n" +
			"Host paths: a model may name host paths (seed_path, source_path, output_path) only under the\n" +
			"directories granted here: the project (read-only), --host-path DIR[:ro|rw] (repeatable) and the\n" +
			"exports directory (read-write; default under the state dir). Anything else is host_path_denied.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := pyromcp.ParseProfile(profile)
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			m, err := pyromcp.ParseMode(mode)
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			// No progress renderer: stdout carries the protocol.
			opts := []pyro.Option{pyro.WithInsecureRegistries(a.insecure...), pyro.WithAllowPull(allowPull...)}
			if noNetwork {
				opts = append(opts, pyro.WithNoBuildNetwork())
			}
			base, err := pyro.New(opts...)
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			if ttlSeconds < 0 {
				return a.fail(cmd.Context(), errdefs.InvalidArgument("workspace-ttl-seconds", "%d is negative; use 0 for workspaces that never expire", ttlSeconds), false)
			}
			cfg := pyromcp.Config{Profile: p, Mode: m, Version: cliexec.Version, ProjectPath: projectPath, NoNetwork: noNetwork, WorkspaceTTLSeconds: ttlSeconds,
				AllowNetworkChanges: allowNetworkChanges, AllowBuild: allowBuild}
			switch {
			case noProjectSource && (projectPath != "" || repoURL != ""):
				return a.fail(cmd.Context(), errdefs.InvalidArgument("no-project-source", "goes with neither --project-path nor --repo-url"), false)
			case repoURL != "" && projectPath != "":
				return a.fail(cmd.Context(), errdefs.InvalidArgument("repo-url", "give --repo-url or --project-path, not both"), false)
			case repoRef != "" && repoURL == "":
				return a.fail(cmd.Context(), errdefs.InvalidArgument("repo-ref", "needs --repo-url"), false)
			case repoURL != "":
				if cfg.ProjectPath, err = base.CloneProject(cmd.Context(), pyro.CloneProjectRequest{URL: repoURL, Ref: repoRef}); err != nil {
					return a.fail(cmd.Context(), err, false)
				}
			case noProjectSource:
			case !cmd.Flags().Changed("project-path"):
				if wd, err := os.Getwd(); err == nil {
					cfg.ProjectPath = pyro.GitToplevel(cmd.Context(), wd)
				}
			}
			if exportsDir == "" {
				exportsDir = base.ExportsDir()
			}
			roots, err := hostRoots(cfg.ProjectPath, exportsDir, hostPaths)
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			c, err := base.Confine(roots...)
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			defer c.Close()
			printHostRoots(a.stderr, c)
			if httpAddr == "" {
				return pyromcp.ServeStdio(cmd.Context(), c, cfg)
			}
			if tokenFile == "" {
				tokenFile = filepath.Join(c.StateDir(), "mcp-token")
			}
			err = pyromcp.ServeHTTP(cmd.Context(), c, cfg, pyromcp.HTTPOptions{
				Addr: httpAddr, AllowRemote: allowRemote, Token: os.Getenv("PYRO_MCP_TOKEN"),
				TokenFile: tokenFile, Log: a.stderr,
			})
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			return nil
		},
	}
	serve.Flags().StringVar(&httpAddr, "http", "", "serve Streamable HTTP on this loopback HOST:PORT instead of stdio")
	serve.Flags().StringVar(&projectPath, "project-path", "", "Git checkout workspace_create seeds from when no seed_path is given (default: the checkout the server starts in)")
	serve.Flags().StringArrayVar(&hostPaths, "host-path", nil, "grant the model a host directory: DIR (read-only), DIR:ro or DIR:rw (repeatable)")
	serve.Flags().StringVar(&exportsDir, "exports-dir", "", "directory the model may export into (default: exports under the state dir)")
	serve.Flags().IntVar(&ttlSeconds, "workspace-ttl-seconds", pyromcp.DefaultWorkspaceTTLSeconds, "ttl_seconds of workspaces a model creates without one; expired ones are deleted while the server runs (0 = never)")
	serve.Flags().StringVar(&tokenFile, "token-file", "", "file holding the HTTP bearer token, made once if missing (default: mcp-token under the state dir)")
	serve.Flags().StringVar(&repoURL, "repo-url", "", "seed workspaces from a fresh clone of this Git repository instead of a local project")
	serve.Flags().StringVar(&repoRef, "repo-ref", "", "branch or tag of --repo-url (default: its default branch)")
	serve.Flags().BoolVar(&noProjectSource, "no-project-source", false, "no project at all: workspace_create without seed_path starts empty")
	serve.Flags().BoolVar(&allowRemote, "allow-remote", false, "allow a non-loopback --http address")
	serve.Flags().BoolVar(&allowNetworkChanges, "allow-network-changes", false, "offer workspace_network_update, with which a model may change (and widen) a running workspace's egress allow list; off by default")
	serve.Flags().BoolVar(&noNetwork, "no-network", false, "refuse every call that asks for a guest network (vm_run network, network_policy other than off)")
	serve.Flags().StringArrayVar(&allowPull, "allow-pull", nil,
		"image references a model may have pulled on first use: a glob on the normalized reference, e.g. 'docker.io/library/python:*' ('*' stops at '/'; repeatable). Default: none, only local environments")
	serve.Flags().BoolVar(&allowBuild, "allow-build", false, "offer environment_build, with which a model may build custom environments kept on this host; off by default (environment files in the project are used either way)")
	serve.Flags().StringVar(&profile, "profile", string(pyromcp.ProfileWorkspaceCore), "tool profile: vm-run, workspace-core or workspace-full")
	serve.Flags().StringVar(&mode, "mode", "", "task mode instead of a profile: a narrower tool set and instructions for repro-fix, inspect, cold-start or review-eval")
	serve.MarkFlagsMutuallyExclusive("profile", "mode")
	cmd.AddCommand(serve)
	return cmd
}

// hostRoots builds the directories a model may name: the project (read),
// the exports directory (read-write, made if missing) and each --host-path.
func hostRoots(project, exports string, hostPaths []string) ([]pyro.HostRoot, error) {
	var roots []pyro.HostRoot
	if project != "" {
		roots = append(roots, pyro.HostRoot{Path: project, Label: "project"})
	}
	if err := os.MkdirAll(exports, 0o700); err != nil {
		return nil, errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument, "exports-dir: cannot create %s", exports)
	}
	roots = append(roots, pyro.HostRoot{Path: exports, Write: true, Label: "exports"})
	for _, hp := range hostPaths {
		dir, mode := hp, "ro"
		if i := strings.LastIndexByte(hp, ':'); i > 0 && (hp[i+1:] == "ro" || hp[i+1:] == "rw") {
			dir, mode = hp[:i], hp[i+1:]
		}
		roots = append(roots, pyro.HostRoot{Path: dir, Write: mode == "rw", Label: "host-path"})
	}
	return roots, nil
}

// printHostRoots tells the operator what the model may read and write.
func printHostRoots(w io.Writer, c *pyro.Client) {
	roots, _ := c.HostRoots()
	for _, r := range roots {
		mode := "read-only"
		if r.Write {
			mode = "read-write"
		}
		fmt.Fprintf(w, "pyro: host paths: %s %s (%s)\n", r.Label, r.Path, mode)
	}
}
