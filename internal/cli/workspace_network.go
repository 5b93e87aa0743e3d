package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pyrovm/pyro"
)

// addAllowFlags adds the egress allow-list flags (create, run, network
// allow/deny) that fill r.
func addAllowFlags(f *pflag.FlagSet, r *pyro.EgressRules, verb string) {
	f.StringArrayVar(&r.AllowHosts, "allow-host", nil, verb+" a DNS name, or *.NAME for every name under it (repeatable)")
	f.StringArrayVar(&r.AllowCIDRs, "allow-cidr", nil, verb+" an address range CIDR[:PORTS], e.g. 10.1.0.0/16, 192.0.2.7:443, 198.51.100.0/24:80,443 (repeatable)")
	f.StringArrayVar(&r.AllowPresets, "allow-preset", nil, verb+" a preset host list: "+presetList()+" (repeatable)")
}

func presetList() string {
	var parts []string
	for name, hosts := range pyro.EgressPresets() {
		parts = append(parts, name+" ("+strings.Join(hosts, " ")+")")
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

const allowFlagsNote = "With any --allow-* rule, the guest reaches only what the rules name: other DNS names get NXDOMAIN, " +
	"and connections go only to allowed ranges or to addresses an allowed name resolved to (whose TLS server name or HTTP Host must be allowed too)."

func (a *app) wsNetwork() *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "A workspace's egress allow list and the log of what its network refused"}
	cmd.AddCommand(a.wsNetworkChange("allow", "Add rules to the allow list; a running workspace applies them at once (no restart)",
		(*pyro.Client).AllowWorkspaceNetwork),
		a.wsNetworkChange("deny", "Remove rules from the allow list; a running workspace applies it at once",
			(*pyro.Client).DenyWorkspaceNetwork),
		a.wsNetworkShow(), a.wsNetworkLog())
	return cmd
}

func (a *app) wsNetworkChange(verb, short string, call func(*pyro.Client, context.Context, pyro.WorkspaceNetworkChange) (*pyro.WorkspaceNetwork, error)) *cobra.Command {
	var req pyro.WorkspaceNetworkChange
	var jsonOut bool
	cmd := &cobra.Command{
		Use: verb + " ID (--allow-host NAME | --allow-cidr CIDR[:PORTS] | --allow-preset NAME)...", Short: short, Args: cobra.ExactArgs(1),
		Long:    short + ".\nRules are kept in the workspace's record across stop and start. " + allowFlagsNote,
		Example: "  pyro workspace network " + verb + " ws1 --allow-preset pypi --allow-host '*.githubusercontent.com'",
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Workspace = args[0]
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return call(c, ctx, req)
			}, func(v any) { a.printNetwork(v.(*pyro.WorkspaceNetwork)) })
		},
	}
	word := "allow"
	if verb == "deny" {
		word = "remove the rule allowing"
	}
	addAllowFlags(cmd.Flags(), &req.EgressRules, word)
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) wsNetworkShow() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "show ID", Short: "Show the network policy and the allow list", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.WorkspaceNetwork(ctx, args[0])
			}, func(v any) { a.printNetwork(v.(*pyro.WorkspaceNetwork)) })
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func (a *app) printNetwork(n *pyro.WorkspaceNetwork) {
	fmt.Fprintf(a.stdout, "workspace: %s (%s)\npolicy:    %s\negress:    %s\n", n.WorkspaceID, n.State, n.NetworkPolicy, n.Egress)
	if n.Egress != pyro.EgressAllowList {
		return
	}
	if n.IsEmpty() {
		fmt.Fprintln(a.stdout, "rules:     none: nothing is allowed")
	}
	for _, h := range n.AllowHosts {
		fmt.Fprintf(a.stdout, "host:      %s\n", h)
	}
	for _, c := range n.AllowCIDRs {
		fmt.Fprintf(a.stdout, "cidr:      %s\n", c)
	}
	for _, p := range n.AllowPresets {
		fmt.Fprintf(a.stdout, "preset:    %s (%s)\n", p, strings.Join(n.PresetHosts[p], " "))
	}
}

func (a *app) wsNetworkLog() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use: "log ID", Short: "List the DNS names and connections the network refused, and why (newest 1000, since boot)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) {
				return c.WorkspaceNetworkLog(ctx, args[0])
			}, func(v any) {
				l := v.(*pyro.WorkspaceNetworkLog)
				if len(l.Entries) == 0 {
					fmt.Fprintln(a.stdout, "nothing refused since boot")
					return
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TIME\tPROTO\tDESTINATION\tNAME\tREASON")
				for _, e := range l.Entries {
					dst := "-"
					if e.Address != "" {
						dst = fmt.Sprintf("%s:%d", e.Address, e.Port)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), e.Protocol, dst, dash(e.Name), e.Reason)
				}
				tw.Flush()
				if l.Total > int64(len(l.Entries)) {
					fmt.Fprintf(a.stdout, "(%d older refusals dropped)\n", l.Total-int64(len(l.Entries)))
				}
			})
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

// ruleSummary is an allow list on one line.
func ruleSummary(r pyro.EgressRules) string {
	var parts []string
	parts = append(parts, r.AllowHosts...)
	parts = append(parts, r.AllowCIDRs...)
	for _, p := range r.AllowPresets {
		parts = append(parts, "preset:"+p)
	}
	if len(parts) == 0 {
		return "empty (nothing is allowed)"
	}
	return strings.Join(parts, ", ")
}

// printRunBlocked tells, on stderr, what a run's network refused.
func (a *app) printRunBlocked(bs []pyro.BlockedConnection) {
	for _, b := range bs {
		what := b.Name
		if b.Address != "" {
			what = strings.TrimSpace(fmt.Sprintf("%s:%d %s", b.Address, b.Port, b.Name))
		}
		fmt.Fprintf(a.stderr, "pyro: network refused %s %s: %s\n", b.Protocol, what, b.Reason)
	}
}
