package cli

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/hostcfg"
	pyromcp "github.com/pyrovm/pyro/internal/mcp"
)

func (a *app) hostCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "host", Short: "Connect pyro to MCP hosts (Claude Code, Codex, Claude Desktop, Cursor, OpenCode)"}
	var profile, mode, httpURL string
	server := func() (hostcfg.Server, error) {
		if _, err := pyromcp.ParseProfile(profile); err != nil {
			return hostcfg.Server{}, err
		}
		if _, err := pyromcp.ParseMode(mode); err != nil {
			return hostcfg.Server{}, err
		}
		if httpURL != "" {
			if u, err := url.Parse(httpURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return hostcfg.Server{}, errdefs.InvalidArgument("http", "%q is not the http://HOST:PORT/mcp address `pyro mcp serve --http` printed", httpURL)
			}
		}
		self, err := os.Executable()
		return hostcfg.Server{Command: self, Profile: profile, Mode: mode, URL: httpURL}, err
	}
	connect := &cobra.Command{
		Use: "connect claude-code|codex", Short: "Register pyro with a host CLI (runs its `mcp add`, or prints the command)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := server()
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			if s.URL != "" {
				s.Token = os.Getenv(hostcfg.TokenEnv) // Claude Code stores the header as given
			}
			argv, err := hostcfg.AddCommand(args[0], s)
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			bin, err := exec.LookPath(argv[0])
			if err != nil {
				fmt.Fprintf(a.stderr, "pyro: %s is not installed here; run this where it is:\n", argv[0])
				fmt.Fprintln(a.stdout, strings.Join(quoteAll(argv), " "))
				return nil
			}
			c := exec.CommandContext(cmd.Context(), bin, argv[1:]...)
			c.Stdout, c.Stderr = a.stdout, a.stderr
			if err := c.Run(); err != nil {
				return a.fail(cmd.Context(), fmt.Errorf("%s: %w", strings.Join(argv, " "), err), false)
			}
			return nil
		},
	}
	printCfg := &cobra.Command{
		Use: "print-config claude-code|claude-desktop|codex|cursor|opencode", Short: "Print the config a host needs to run pyro (JSON; TOML for Codex)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := server()
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			b, err := hostcfg.Config(args[0], s)
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			fmt.Fprintln(a.stdout, string(b))
			return nil
		},
	}
	for _, c := range []*cobra.Command{connect, printCfg} {
		c.Flags().StringVar(&profile, "profile", string(pyromcp.ProfileWorkspaceCore), "MCP profile the host gets")
		c.Flags().StringVar(&mode, "mode", "", "task mode the host gets instead of a profile: repro-fix, inspect, cold-start or review-eval")
		c.MarkFlagsMutuallyExclusive("profile", "mode")
		c.Flags().StringVar(&httpURL, "http", "", "connect to a running `pyro mcp serve --http` at this http://HOST:PORT/mcp instead of starting pyro (the host reads the token from $"+hostcfg.TokenEnv+")")
	}
	cmd.AddCommand(connect, printCfg)
	return cmd
}

func quoteAll(argv []string) []string {
	out := make([]string, len(argv))
	for i, s := range argv {
		out[i] = shellQuote(s)
	}
	return out
}
