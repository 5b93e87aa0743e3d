package cli

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/cliexec"
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
		self, err := cliBinary()
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
	var scope string
	repair := &cobra.Command{
		Use: "repair claude-code|claude-desktop|codex|cursor|opencode", Short: "Write (or fix) pyro's entry in a host's config file, keeping the rest of the file", Args: cobra.ExactArgs(1),
		Example: "  pyro host repair codex                       # ~/.codex/config.toml, tool_timeout_sec = 1800\n" +
			"  pyro host repair claude-code --scope user    # ~/.claude.json instead of the project's .mcp.json",
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := server()
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			f, err := a.hostFile(cmd, args[0], scope)
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			backup, err := hostcfg.Repair(f, s)
			if err != nil {
				return a.fail(cmd.Context(), err, false)
			}
			fmt.Fprintf(a.stdout, "%s: pyro written to %s\n", args[0], f.Path)
			if backup != "" {
				fmt.Fprintf(a.stdout, "%s: the previous file is kept as %s\n", args[0], backup)
			}
			return nil
		},
	}
	repair.Flags().StringVar(&scope, "scope", "", "user or project (default: project for claude-code, user for the others)")
	for _, c := range []*cobra.Command{connect, printCfg, repair} {
		c.Flags().StringVar(&profile, "profile", string(pyromcp.ProfileWorkspaceCore), "MCP profile the host gets")
		c.Flags().StringVar(&mode, "mode", "", "task mode the host gets instead of a profile: repro-fix, inspect, cold-start or review-eval")
		c.MarkFlagsMutuallyExclusive("profile", "mode")
		c.Flags().StringVar(&httpURL, "http", "", "connect to a running `pyro mcp serve --http` at this http://HOST:PORT/mcp instead of starting pyro (the host reads the token from $"+hostcfg.TokenEnv+")")
	}
	cmd.AddCommand(connect, printCfg, repair, a.hostDoctorCommand())
	return cmd
}

func (a *app) hostDirs(cmd *cobra.Command) hostcfg.Dirs {
	project, _ := os.Getwd()
	if project != "" {
		project = pyro.GitToplevel(cmd.Context(), project)
	}
	return hostcfg.DirsFromEnv(project)
}

// hostFile is the config file of host in scope ("" = the host's default).
func (a *app) hostFile(cmd *cobra.Command, host, scope string) (hostcfg.File, error) {
	files, err := hostcfg.Files(host, a.hostDirs(cmd))
	if err != nil {
		return hostcfg.File{}, err
	}
	var scopes []string
	for _, f := range files {
		if scope == "" || f.Scope == scope {
			return f, nil
		}
		scopes = append(scopes, f.Scope)
	}
	return hostcfg.File{}, errdefs.InvalidArgument("scope", "%s has no %q config (scopes: %s)", host, scope, strings.Join(scopes, ", "))
}

func (a *app) hostDoctorCommand() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "doctor", Short: "Check pyro's entry in every host's config: present, its pyro binary there, its arguments valid", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			self, _ := cliBinary()
			opts := hostcfg.CheckOptions{Self: self, ServeArgs: a.checkServeArgs}
			findings := []hostcfg.Finding{}
			broken := false
			for _, host := range hostcfg.Hosts {
				files, _ := hostcfg.Files(host, a.hostDirs(cmd))
				for _, f := range files {
					fd := hostcfg.Check(f, opts)
					findings = append(findings, fd)
					broken = broken || fd.State == "broken"
				}
			}
			if jsonOut {
				writeJSON(a.stdout, map[string]any{"ok": !broken, "files": findings})
			} else {
				for _, fd := range findings {
					what := fd.Command
					if fd.URL != "" {
						what = fd.URL
					}
					fmt.Fprintf(a.stdout, "%-14s %-7s %-14s %s %s\n", fd.Host, fd.Scope, fd.State, fd.Path, what)
					for _, p := range fd.Problems {
						fmt.Fprintf(a.stdout, "  problem: %s (fix: pyro host repair %s --scope %s)\n", p, fd.Host, fd.Scope)
					}
					for _, n := range fd.Notes {
						fmt.Fprintf(a.stdout, "  note:    %s\n", n)
					}
				}
			}
			if broken {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

// checkServeArgs parses the arguments after `mcp serve` as this pyro would.
func (a *app) checkServeArgs(args []string) error {
	var serve *cobra.Command
	for _, c := range a.mcpCommand().Commands() {
		if c.Name() == "serve" {
			serve = c
		}
	}
	if err := serve.ParseFlags(args); err != nil {
		return err
	}
	if err := serve.ValidateFlagGroups(); err != nil {
		return err
	}
	return checkFlagValues(serve)
}

func quoteAll(argv []string) []string {
	out := make([]string, len(argv))
	for i, s := range argv {
		out[i] = cliexec.ShellQuote(s)
	}
	return out
}
