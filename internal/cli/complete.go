package cli

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
	pyromcp "github.com/pyrovm/pyro/internal/mcp"
)

// enumFlags are the flags whose values are a fixed set, completed as such.
var enumFlags = map[string][]string{
	"network-policy": {"off", "egress", "egress+published-ports"},
	"signal":         {"INT", "TERM", "HUP", "KILL"},
	"accel":          {"auto", "kvm", "tcg"},
	"profile":        names(pyromcp.Profiles),
	"mode":           names(pyromcp.Modes),
	"scope":          {"user", "project"},
}

func names[S ~string](values []S) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out
}

// addCompletions gives every command dynamic shell completion (`pyro
// completion bash|zsh|fish`): workspace ids and names where a command takes
// ID, environments for ENV, VM ids for VM_ID, and the values of enum flags.
func (a *app) addCompletions(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		a.addCompletions(sub)
	}
	if fields := strings.Fields(cmd.Use); len(fields) > 1 && cmd.ValidArgsFunction == nil {
		switch strings.Trim(fields[1], "[].") {
		case "ID":
			cmd.ValidArgsFunction = firstArg(a.workspaceRefs)
		case "ENV":
			cmd.ValidArgsFunction = anyArg(a.environmentNames)
		case "VM_ID":
			cmd.ValidArgsFunction = firstArg(a.vmIDs)
		}
	}
	for name, values := range enumFlags {
		if cmd.Flags().Lookup(name) != nil {
			_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
		}
	}
}

type lister func(context.Context, *pyro.Client) []string

func firstArg(list lister) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveDefault
		}
		return complete(cmd, list)
	}
}

func anyArg(list lister) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return complete(cmd, list)
	}
}

func complete(cmd *cobra.Command, list lister) ([]cobra.Completion, cobra.ShellCompDirective) {
	c, err := pyro.New()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	return list(cmd.Context(), c), cobra.ShellCompDirectiveNoFileComp
}

func (a *app) workspaceRefs(ctx context.Context, c *pyro.Client) []string {
	ws, _ := c.ListWorkspaces(ctx)
	var out []string
	for _, w := range ws {
		out = append(out, w.WorkspaceID)
		if w.Name != "" {
			out = append(out, w.Name)
		}
	}
	return out
}

func (a *app) environmentNames(ctx context.Context, c *pyro.Client) []string {
	envs, _ := c.ListEnvironments(ctx)
	var out []string
	for _, e := range envs {
		out = append(out, e.Name)
	}
	return out
}

func (a *app) vmIDs(ctx context.Context, c *pyro.Client) []string {
	vms, _ := c.ListVMs(ctx)
	var out []string
	for _, v := range vms {
		out = append(out, v.VMID)
	}
	return out
}
