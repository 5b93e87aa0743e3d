package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/cliexec"
)

func (a *app) wsService() *cobra.Command {
	cmd := &cobra.Command{Use: "service", Short: "Long-running processes with readiness checks"}
	cmd.AddCommand(a.serviceStart(), a.serviceList(), a.serviceRef("status", "Show one service", (*pyro.Client).ServiceStatus),
		a.serviceLogs(), a.serviceRef("stop", "Stop a service: TERM, then KILL after 5 s", (*pyro.Client).StopService))
	return cmd
}

func (a *app) printService(v any) {
	s := v.(*pyro.Service)
	fmt.Fprintf(a.stdout, "service: %s (workspace %s)\nstate:   %s", s.Name, s.WorkspaceID, s.State)
	if s.ExitCode != nil {
		fmt.Fprintf(a.stdout, ", exit code %d", *s.ExitCode)
	}
	if s.Signal != "" {
		fmt.Fprintf(a.stdout, ", signal %s", s.Signal)
	}
	fmt.Fprintf(a.stdout, "\ncommand: %s\ncwd:     %s\n", printable(s.Command), printable(s.Cwd))
	if s.ReadyKind != "" {
		fmt.Fprintf(a.stdout, "ready:   %s %s\n", s.ReadyKind, s.ReadyTarget)
	}
	if s.Pid != 0 {
		fmt.Fprintf(a.stdout, "pid:     %d\n", s.Pid)
	}
	if s.Reason != "" {
		fmt.Fprintf(a.stdout, "reason:  %s\n", s.Reason)
	}
	for _, p := range s.PublishedPorts {
		fmt.Fprintf(a.stdout, "port:    guest %d -> %s:%d\n", p.GuestPort, p.HostAddress, p.HostPort)
	}
	fmt.Fprintf(a.stdout, "log:     %s (in the guest)\n", s.LogPath)
}

// parsePublish turns --publish GUEST_PORT[:HOST_PORT] into port mappings.
func parsePublish(args []string) ([]pyro.PortMapping, error) {
	var out []pyro.PortMapping
	for _, arg := range args {
		g, h, hasHost := strings.Cut(arg, ":")
		guest, err := strconv.Atoi(g)
		host := 0
		if err == nil && hasHost {
			host, err = strconv.Atoi(h)
		}
		if err != nil || guest < 1 || guest > 65535 || host < 0 || host > 65535 {
			return nil, fmt.Errorf("--publish %q is malformed: expected GUEST_PORT or GUEST_PORT:HOST_PORT (ports 1-65535; host port 0 = any free port)", arg)
		}
		out = append(out, pyro.PortMapping{GuestPort: guest, HostPort: host})
	}
	return out, nil
}

func (a *app) serviceStart() *cobra.Command {
	var req pyro.StartServiceRequest
	var secretEnv, publish []string
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "start ID NAME [flags] -- CMD...", Short: "Start a service and wait until it is ready",
		Example: "  pyro workspace service start ws1 web --ready-http http://127.0.0.1:8000/ -- python3 -m http.server 8000",
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 2 || len(args) < 3 {
				return fmt.Errorf("usage: pyro workspace service start ID NAME [flags] -- CMD...")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Workspace, req.Name, req.Command = args[0], args[1], cliexec.ShellCommand(args[2:])
			env, err := cliexec.ParseSecretEnv(secretEnv)
			if err != nil {
				return err // usage error
			}
			req.SecretEnv = env
			if req.Publish, err = parsePublish(publish); err != nil {
				return err // usage error
			}
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) { return c.StartService(ctx, req) }, a.printService)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Cwd, "cwd", "", "working directory, relative to /workspace (default /workspace)")
	f.StringVar(&req.ReadyFile, "ready-file", "", "ready once this file exists (relative to --cwd)")
	f.IntVar(&req.ReadyTCP, "ready-tcp", 0, "ready once this guest TCP port accepts connections")
	f.StringVar(&req.ReadyHTTP, "ready-http", "", "ready once this http:// URL answers with a status below 500")
	f.StringVar(&req.ReadyCommand, "ready-command", "", "ready once this shell command exits 0")
	f.IntVar(&req.ReadyTimeoutSeconds, "ready-timeout-seconds", pyro.DefaultReadyTimeoutSeconds, "give up and stop the service after this long")
	f.IntVar(&req.ReadyIntervalMs, "ready-interval-ms", pyro.DefaultReadyIntervalMs, "time between readiness checks")
	f.StringArrayVar(&publish, "publish", nil, "GUEST_PORT[:HOST_PORT]: reach a guest TCP port on the host's 127.0.0.1 while the service runs "+
		"(repeatable; host port 0 or none = any free port; needs network policy egress+published-ports)")
	addSecretEnvFlag(cmd, &secretEnv)
	f.BoolVar(&jsonOut, "json", false, "print one JSON object")
	cmd.MarkFlagsMutuallyExclusive("ready-file", "ready-tcp", "ready-http", "ready-command")
	return cmd
}

func (a *app) serviceList() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "list ID", Short: "List a workspace's services in every state", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				l, err := c.ListServices(ctx, args[0])
				return struct {
					Services []pyro.Service `json:"services"`
				}{l}, err
			}, func(v any) {
				l := v.(struct {
					Services []pyro.Service `json:"services"`
				}).Services
				if len(l) == 0 {
					fmt.Fprintln(a.stdout, "no services")
					return
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSTATE\tEXIT\tSTARTED\tCOMMAND")
				for _, s := range l {
					exit, started := "-", "-"
					if s.ExitCode != nil {
						exit = fmt.Sprint(*s.ExitCode)
					}
					if s.StartedAt != nil {
						started = s.StartedAt.Local().Format(time.TimeOnly)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.State, exit, started, printable(s.Command))
				}
				tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) serviceRef(use, short string, call func(*pyro.Client, context.Context, pyro.ServiceRequest) (*pyro.Service, error)) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: use + " ID NAME", Short: short, Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return call(c, ctx, pyro.ServiceRequest{Workspace: args[0], Name: args[1]})
			}, a.printService)
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) serviceLogs() *cobra.Command {
	var tail int
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "logs ID NAME", Short: "Print the end of a service's log (stdout and stderr)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.ServiceLogs(ctx, pyro.ServiceLogsRequest{Workspace: args[0], Name: args[1], TailLines: tail})
			}, func(v any) {
				l := v.(*pyro.ServiceLogs)
				if l.Truncated {
					fmt.Fprintln(a.stderr, "[older output left out]")
				}
				fmt.Fprint(a.stdout, l.Log)
			})
		},
	}
	cmd.Flags().IntVar(&tail, "tail-lines", 0, "only the last N lines (0 = all, at most 1 MiB)")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}
