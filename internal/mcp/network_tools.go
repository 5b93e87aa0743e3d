package mcp

import (
	"context"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// allowProps describe the egress allow-list arguments wherever they appear.
var allowProps = map[string]prop{
	"allow_hosts": {desc: "Egress allow list: DNS names the guest may reach, e.g. [\"pypi.org\", \"*.githubusercontent.com\"] " +
		"(\"*.\" = every name under it, not the name itself). With any allow_* rule the guest reaches only what the rules name: " +
		"other names get NXDOMAIN, and the TLS server name or HTTP Host of a connection must be allowed too. Needs a network."},
	"allow_cidrs": {desc: "Egress allow list: address ranges with optional ports, CIDR[:PORTS], e.g. [\"10.1.0.0/16\", " +
		"\"192.0.2.7:443\", \"198.51.100.0/24:80,443\"]. This host, its loopback and link-local/metadata addresses stay blocked whatever the rules."},
	"allow_presets": {desc: "Egress allow list: named host lists: " + presetsDesc() + "."},
}

func presetsDesc() string {
	var parts []string
	for name, hosts := range pyro.EgressPresets() {
		parts = append(parts, name+" ("+strings.Join(hosts, ", ")+")")
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}

const networkFields = "Result: workspace_id, state, network_policy, egress (off: no network; open: no rules, anywhere but " +
	"this host and metadata services; allowlist: only what the rules name), allow_hosts, allow_cidrs, allow_presets, preset_hosts."

func addWorkspaceNetworkShow(s *mcp.Server, d deps, name string) {
	t := &mcp.Tool{Name: name,
		Description: "Show a workspace's network policy and egress allow list (what its commands may reach). " + networkFields,
		InputSchema: inputSchema[workspaceRefInput](workspaceRefProps)}
	addTool(s, d, t, handler(func(ctx context.Context, in workspaceRefInput) (*pyro.WorkspaceNetwork, error) {
		return d.c.WorkspaceNetwork(ctx, in.WorkspaceID)
	}))
}

func addWorkspaceNetworkLog(s *mcp.Server, d deps, name string) {
	t := &mcp.Tool{Name: name,
		Description: "List the DNS names and connections a running workspace's network refused since boot (newest 1000), " +
			"each with time, protocol, address, port, name (DNS name, TLS server name or HTTP Host) and reason. " +
			"Use it when a download or install fails with a name-resolution or connection error. Result: workspace_id, entries, total.",
		InputSchema: inputSchema[workspaceRefInput](workspaceRefProps)}
	addTool(s, d, t, handler(func(ctx context.Context, in workspaceRefInput) (*pyro.WorkspaceNetworkLog, error) {
		return d.c.WorkspaceNetworkLog(ctx, in.WorkspaceID)
	}))
}

type networkUpdateInput struct {
	WorkspaceID  string   `json:"workspace_id"`
	Action       string   `json:"action"`
	AllowHosts   []string `json:"allow_hosts,omitempty"`
	AllowCIDRs   []string `json:"allow_cidrs,omitempty"`
	AllowPresets []string `json:"allow_presets,omitempty"`
}

// addWorkspaceNetworkUpdate is offered only when the operator starts the
// server with --allow-network-changes.
func addWorkspaceNetworkUpdate(s *mcp.Server, d deps, name string) {
	t := &mcp.Tool{Name: name,
		Description: "Change a workspace's egress allow list: action allow adds the given rules, deny removes them. " +
			"A running workspace applies the change at once (no restart); it is kept across stop and start. " +
			"Allow on a workspace without rules starts a list, so that only what it names is reachable. " + networkFields,
		InputSchema: inputSchema[networkUpdateInput](map[string]prop{
			"workspace_id":  workspaceRefProps["workspace_id"],
			"action":        {desc: "allow adds the rules, deny removes them.", enum: []any{"allow", "deny"}, required: true},
			"allow_hosts":   allowProps["allow_hosts"],
			"allow_cidrs":   allowProps["allow_cidrs"],
			"allow_presets": allowProps["allow_presets"],
		})}
	addTool(s, d, t, handler(func(ctx context.Context, in networkUpdateInput) (*pyro.WorkspaceNetwork, error) {
		req := pyro.WorkspaceNetworkChange{Workspace: in.WorkspaceID,
			EgressRules: pyro.EgressRules{AllowHosts: in.AllowHosts, AllowCIDRs: in.AllowCIDRs, AllowPresets: in.AllowPresets}}
		switch in.Action {
		case "allow":
			return d.c.AllowWorkspaceNetwork(ctx, req)
		case "deny":
			return d.c.DenyWorkspaceNetwork(ctx, req)
		}
		return nil, errdefs.InvalidArgument("action", "%q is not allow or deny", in.Action)
	}))
}
