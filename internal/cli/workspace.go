package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/cliexec"
	"github.com/pyrovm/pyro/internal/errdefs"
)

func (a *app) workspaceCommand(args []string) *cobra.Command {
	cmd := &cobra.Command{Use: "workspace", Aliases: []string{"ws"}, Short: "Persistent workspaces: a VM with /workspace that lives across calls"}
	simple := func(name, short string, f func(*pyro.Client, context.Context, string) (*pyro.Workspace, error)) child {
		return child{name, leaf(func() *cobra.Command { return a.wsSimple(name, short, f) })}
	}
	addChildren(cmd, args, []child{{"create", leaf(a.wsCreate)}, {"list", leaf(a.wsList)}, {"status", leaf(a.wsStatus)},
		{"logs", leaf(a.wsLogs)}, {"exec", leaf(a.wsExec)}, {"sync", leaf(a.wsSync)}, {"export", leaf(a.wsExport)},
		{"file", leaf(a.wsFile)}, {"update", leaf(a.wsUpdate)}, {"reap-expired", leaf(a.wsReap)}, {"diff", leaf(a.wsDiff)},
		{"patch", leaf(a.wsPatch)}, {"summary", leaf(a.wsSummary)}, {"shell", leaf(a.wsShell)}, {"service", leaf(a.wsService)},
		{"snapshot", leaf(a.wsSnapshot)}, {"reset", leaf(a.wsReset)}, {"disk", leaf(a.wsDisk)}, {"network", leaf(a.wsNetwork)},
		{"command", leaf(a.wsCommand)}, {"pause", leaf(a.wsPause)}, {"resume", leaf(a.wsResume)}, {"fork", leaf(a.wsFork)},
		simple("stop", "Flush and power off; keep disk, history and baseline", (*pyro.Client).StopWorkspace),
		simple("start", "Boot a stopped workspace from its kept disk", (*pyro.Client).StartWorkspace),
		simple("delete", "Remove the workspace's VM and all its host state", (*pyro.Client).DeleteWorkspace)})
	return cmd
}

func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, errdefs.InvalidArgument("label", "%q is not KEY=VALUE", kv)
		}
		out[k] = v
	}
	return out, nil
}

func (a *app) wsCreate() *cobra.Command {
	var req pyro.CreateWorkspaceRequest
	var labels, secretValues, secretFiles, secretBrokers []string
	var jsonOut, idOnly bool
	cmd := &cobra.Command{
		Use: "create [ENV]", Short: "Boot a workspace, seed /workspace and record the baseline", Args: cobra.MaximumNArgs(1),
		Long: "ENV names the environment. Without it, --env-file FILE (an environment file, built first when\n" +
			"needed) or else the seed directory's own " + pyro.ProjectEnvFile + " is used.",
		Example: "  pyro workspace create debian:12 --seed-path ./repo --name fix-tests\n" +
			"  pyro workspace create --seed-path ./repo   # uses ./repo/" + pyro.ProjectEnvFile + "\n" +
			"  pyro workspace create debian:12 --secret-file GH_TOKEN=$HOME/.config/gh-token\n" +
			"  pyro workspace create debian:12 --network-policy egress --secret-file GH_TOKEN=$HOME/.config/gh-token --secret-broker GH_TOKEN=api.github.com",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(args) == 1 {
				req.Environment = args[0]
			}
			sec, err := parseSecrets(secretValues, secretFiles)
			if err != nil {
				return err // usage error
			}
			if err := applySecretBrokers(sec, secretBrokers); err != nil {
				return err // usage error
			}
			req.Secrets = sec
			l, err := parseLabels(labels)
			if err != nil {
				return a.fail(ctx, err, jsonOut)
			}
			req.Labels = l
			c, done, err := a.client(jsonOut)
			if err != nil {
				return a.fail(ctx, err, jsonOut)
			}
			w, err := c.CreateWorkspace(ctx, req)
			done()
			if err != nil {
				return a.fail(ctx, err, jsonOut)
			}
			switch {
			case idOnly:
				fmt.Fprintln(a.stdout, w.WorkspaceID)
			case jsonOut:
				writeJSON(a.stdout, w)
			default:
				printWorkspace(a, w)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.SeedPath, "seed-path", "", "host directory, .tar, .tar.gz or .tgz to seed /workspace from")
	f.StringVar(&req.EnvFile, "env-file", "", "run in the custom environment of this environment file (built first when needed)")
	f.BoolVar(&req.SeedGitTracked, "seed-git-tracked", false, "seed only the Git-tracked files of the checkout at --seed-path")
	f.StringVar(&req.Name, "name", "", "unique name to address the workspace by")
	f.StringArrayVar(&labels, "label", nil, "KEY=VALUE label (repeatable)")
	f.StringArrayVar(&secretValues, "secret", nil, secretFlagHelp)
	f.StringArrayVar(&secretFiles, "secret-file", nil, secretFileFlagHelp)
	f.StringArrayVar(&secretBrokers, "secret-broker", nil, secretBrokerHelp)
	f.IntVar(&req.VCPUCount, "vcpu-count", pyro.DefaultVCPUCount, "virtual CPUs")
	f.IntVar(&req.MemMiB, "mem-mib", pyro.DefaultMemMiB, "guest memory in MiB")
	f.IntVar(&req.TTLSeconds, "ttl-seconds", 0, "expire after this many seconds without activity (0 = never)")
	f.StringVar(&req.TTLAction, "ttl-action", "delete", "what an expired TTL does: delete, or pause (the next call resumes it)")
	f.IntVar(&req.IdlePauseSeconds, "idle-pause-seconds", 0, "pause after this many seconds without a call; the next call resumes it (0 = never)")
	f.StringVar(&req.NetworkPolicy, "network-policy", "off", networkPolicyHelp)
	addAllowFlags(f, &req.EgressRules, "allow only (with egress)")
	f.BoolVar(&idOnly, "id-only", false, "print only the workspace id")
	f.BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func printWorkspace(a *app, w *pyro.Workspace) {
	fmt.Fprintf(a.stdout, "workspace:   %s", w.WorkspaceID)
	if w.Name != "" {
		fmt.Fprintf(a.stdout, " (%s)", w.Name)
	}
	fmt.Fprintf(a.stdout, "\nstate:       %s\nenvironment: %s (%d vCPU, %d MiB, %s)\nseed:        %d entries, %s\ncommands:    %d\n",
		w.State, w.Environment, w.VCPUCount, w.MemMiB, w.Backend, w.SeedEntries, humanBytes(w.SeedBytes), w.CommandCount)
	if w.NetworkPolicy != "off" && w.NetworkPolicy != "" {
		fmt.Fprintf(a.stdout, "network:     %s\n", w.NetworkPolicy)
	}
	if w.Egress != nil {
		fmt.Fprintf(a.stdout, "allow list:  %s\n", ruleSummary(*w.Egress))
	}
	if w.SnapshotCount > 0 {
		fmt.Fprintf(a.stdout, "snapshots:   %d\n", w.SnapshotCount)
	}
	if len(w.Secrets) > 0 {
		names := make([]string, len(w.Secrets))
		for i, s := range w.Secrets {
			names[i] = s.Name
			if len(s.BrokerHosts) > 0 {
				names[i] += fmt.Sprintf(" (brokered to %s; the guest sees %s)", strings.Join(s.BrokerHosts, ","), s.Placeholder)
			}
		}
		fmt.Fprintf(a.stdout, "secrets:     %s\n", strings.Join(names, ", "))
	}
	if w.ExecutionMode != "" {
		fmt.Fprintf(a.stdout, "vm:          %s, booted in %d ms\n", w.ExecutionMode, w.BootMs)
	}
	if w.ExpiresAt != nil {
		fmt.Fprintf(a.stdout, "expires:     %s (then %s)\n", w.ExpiresAt.Format(time.RFC3339), w.TTLAction)
	}
	if w.IdlePauseSeconds > 0 {
		fmt.Fprintf(a.stdout, "idle pause:  after %d s without a call\n", w.IdlePauseSeconds)
	}
	if w.PausedAt != nil {
		fmt.Fprintf(a.stdout, "paused:      since %s, %s saved\n", w.PausedAt.Format(time.RFC3339), humanBytes(w.PausedStateBytes))
	}
	for _, c := range w.Commands {
		if c.Background && c.State == pyro.CommandRunning {
			fmt.Fprintf(a.stdout, "background:  %s running %s (%d bytes of output)\n", c.CommandID, c.Command, c.StdoutBytes+c.StderrBytes)
		}
	}
}

func (a *app) wsList() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "list", Short: "List workspaces, newest activity first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				ws, err := c.ListWorkspaces(ctx)
				return map[string]any{"workspaces": ws}, err
			}, func(v any) {
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tSTATE\tENVIRONMENT\tCOMMANDS\tLAST ACTIVITY")
				for _, w := range v.(map[string]any)["workspaces"].([]pyro.Workspace) {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", w.WorkspaceID, dash(w.Name), w.State, w.Environment, w.CommandCount, w.LastActivityAt.Format(time.RFC3339))
				}
				tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) wsStatus() *cobra.Command {
	return a.wsSimple("status", "Show one workspace", func(c *pyro.Client, ctx context.Context, ref string) (*pyro.Workspace, error) {
		return c.WorkspaceStatus(ctx, ref)
	})
}

func (a *app) wsLogs() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "logs ID", Short: "Show the workspace's command history", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				entries, err := c.WorkspaceLogs(ctx, args[0])
				return map[string]any{"commands": entries}, err
			}, func(v any) {
				for _, e := range v.(map[string]any)["commands"].([]pyro.WorkspaceLogEntry) {
					fmt.Fprintf(a.stdout, "#%d  exit %d  %d ms  %s  %s\n", e.Sequence, e.ExitCode, e.DurationMs, e.StartedAt.Format(time.RFC3339), printable(e.Command))
				}
			})
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) wsExec() *cobra.Command {
	var fl cliexec.Flags
	cmd := &cobra.Command{
		Use: "exec ID [flags] -- CMD...", Short: "Run a command in /workspace", Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 || len(args) < 2 {
				return fmt.Errorf("usage: pyro workspace exec ID [flags] -- CMD...")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			req := pyro.WorkspaceExecRequest{Workspace: args[0], Command: cliexec.ShellCommand(args[1:]),
				TimeoutSeconds: fl.TimeoutSeconds, MaxOutputBytes: fl.MaxOutputBytes, Cwd: fl.Workdir, Background: fl.Background}
			jsonOut, interactive := fl.JSON, fl.Interactive
			env, err := cliexec.ParseSecretEnv(fl.SecretEnv)
			if err != nil {
				return err // usage error
			}
			req.SecretEnv = env
			if req.Env, err = cliexec.ParseEnv(fl.Env); err != nil {
				return err // usage error
			}
			if req.Background && interactive {
				return fmt.Errorf("--background and -i do not go together: a background command has no stdin")
			}
			if req.Background {
				return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) { return c.ExecWorkspace(ctx, req) }, func(v any) {
					r := v.(*pyro.WorkspaceExecResult)
					fmt.Fprintf(a.stdout, "%s\n", r.CommandID)
					fmt.Fprintf(a.stderr, "pyro: command %s runs in the background; follow it with \"pyro workspace command logs %s %s --follow\"\n", r.CommandID, r.WorkspaceID, r.CommandID)
				})
			}
			c, done, err := a.client(jsonOut)
			if err != nil {
				return a.fail(ctx, err, jsonOut)
			}
			defer done()
			live := a.liveIO(jsonOut, interactive)
			req.Stdout, req.Stderr, req.Stdin = live.stdout, live.stderr, live.stdin
			res, err := c.ExecWorkspace(ctx, req)
			if err != nil {
				return a.fail(ctx, err, jsonOut)
			}
			return a.commandResult(jsonOut, res, live.left(res.Stdout), live.left(res.Stderr), !live.streamed() && (res.StdoutTruncated || res.StderrTruncated), res.TimedOut, res.ExitCode)
		},
	}
	fl.Register(cmd.Flags())
	return cmd
}

// wsSimple is a command taking one workspace id or name and printing it.
func (a *app) wsSimple(verb, short string, call func(*pyro.Client, context.Context, string) (*pyro.Workspace, error)) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: verb + " ID", Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return call(c, ctx, args[0])
			}, func(v any) { printWorkspace(a, v.(*pyro.Workspace)) })
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) wsUpdate() *cobra.Command {
	var name, ttlAction string
	var labels, clear []string
	var ttl, idle int
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "update ID [--name N] [--label K=V]... [--clear-label K]... [--ttl-seconds N] [--ttl-action delete|pause] [--idle-pause-seconds N]",
		Short: "Change a workspace's name, labels, TTL and idle pause", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := parseLabels(labels)
			if err != nil {
				return a.fail(cmd.Context(), err, jsonOut)
			}
			req := pyro.UpdateWorkspaceRequest{Workspace: args[0], Labels: set, ClearLabels: clear}
			if cmd.Flags().Changed("name") {
				req.Name = &name
			}
			if cmd.Flags().Changed("ttl-seconds") {
				req.TTLSeconds = &ttl
			}
			if cmd.Flags().Changed("ttl-action") {
				req.TTLAction = &ttlAction
			}
			if cmd.Flags().Changed("idle-pause-seconds") {
				req.IdlePauseSeconds = &idle
			}
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.UpdateWorkspace(ctx, req)
			}, func(v any) { printWorkspace(a, v.(*pyro.Workspace)) })
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "new name (empty clears it)")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "KEY=VALUE label to set (repeatable)")
	cmd.Flags().StringArrayVar(&clear, "clear-label", nil, "label key to remove (repeatable)")
	cmd.Flags().IntVar(&ttl, "ttl-seconds", 0, "new TTL, counted from now: extends (or shortens) the workspace's life (0 = never expire)")
	cmd.Flags().StringVar(&ttlAction, "ttl-action", "", "what an expired TTL does: delete or pause")
	cmd.Flags().IntVar(&idle, "idle-pause-seconds", 0, "pause after this many seconds without a call (0 = never)")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) wsReap() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "reap-expired", Short: "Delete every workspace whose TTL has passed", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				ids, err := c.ReapExpired(ctx)
				return map[string]any{"reaped": ids}, err
			}, func(v any) {
				for _, id := range v.(map[string]any)["reaped"].([]string) {
					fmt.Fprintln(a.stdout, "deleted", id)
				}
			})
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

const networkPolicyHelp = "guest network: off (no network device), egress (outbound NAT, never to the host itself, " +
	"its loopback services or link-local addresses) or egress+published-ports (also lets services --publish ports on the host's 127.0.0.1)"
