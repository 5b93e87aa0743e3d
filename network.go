package pyro

import (
	"context"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/network"
)

// EgressRules is an egress allow list: with any rule, a VM's network
// reaches only what the rules name. AllowHosts are DNS names
// ("pypi.org", "*.githubusercontent.com" for every name under it),
// AllowCIDRs address ranges with optional ports ("10.1.0.0/16",
// "192.0.2.7:443", "198.51.100.0/24:80,443", "[2001:db8::/32]:8000-8100"),
// AllowPresets named host lists (EgressPresets). A name no rule allows
// gets NXDOMAIN from the guest's resolver; a connection is allowed only to
// an allowed range, or to an address an allowed name resolved to, and then
// only if its TLS server name or HTTP Host (when it has one) is allowed too.
// The fixed blocks (this host, its loopback, link-local and metadata
// addresses) apply first and no rule lifts them. No rule at all (the zero
// value) is no allow list.
type EgressRules struct {
	AllowHosts   []string `json:"allow_hosts,omitempty"`
	AllowCIDRs   []string `json:"allow_cidrs,omitempty"`
	AllowPresets []string `json:"allow_presets,omitempty"`
}

// BlockedConnection is one refused DNS name, connection or UDP flow.
type BlockedConnection struct {
	Time     time.Time `json:"time"`
	Protocol string    `json:"protocol"`          // dns, tcp or udp
	Address  string    `json:"address,omitempty"` // the destination address (not for dns)
	Port     int       `json:"port,omitempty"`
	Name     string    `json:"name,omitempty"` // the DNS name, TLS server name or HTTP Host, when known
	Reason   string    `json:"reason"`         // which rule said no, and what to allow instead
}

// IsEmpty reports whether r names no rule (no allow list).
func (r EgressRules) IsEmpty() bool { return network.Rules(r).IsEmpty() }

func toBlocked(in []network.Blocked) []BlockedConnection {
	if in == nil {
		return nil
	}
	out := make([]BlockedConnection, len(in))
	for i, b := range in {
		out[i] = BlockedConnection(b)
	}
	return out
}

// EgressPresets returns the preset host lists by name.
func EgressPresets() map[string][]string { return network.Presets }

// Egress modes, as WorkspaceNetwork reports them.
const (
	EgressOff       = "off"       // no network device
	EgressOpen      = "open"      // no rules: anywhere but this host and metadata services
	EgressAllowList = "allowlist" // only what the rules name
)

// egressFor validates the rules a request gives for policy; nil when it
// gives none.
func egressFor(policy network.Policy, r EgressRules) (*network.Rules, error) {
	rules := network.Rules(r)
	if rules.IsEmpty() {
		return nil, nil
	}
	return network.ValidateRules(policy, &rules)
}

// WorkspaceNetwork is a workspace's network and allow list.
type WorkspaceNetwork struct {
	WorkspaceID   string `json:"workspace_id"`
	State         string `json:"state"`
	NetworkPolicy string `json:"network_policy"`
	// Egress is off, open (no rules) or allowlist.
	Egress string `json:"egress"`
	EgressRules
	// PresetHosts are the hosts of the presets in AllowPresets.
	PresetHosts map[string][]string `json:"preset_hosts,omitempty"`
}

// WorkspaceNetworkChange adds (allow) or removes (deny) rules.
type WorkspaceNetworkChange struct {
	Workspace string `json:"workspace_id"` // id or name
	EgressRules
}

// WorkspaceNetworkLog is a running workspace's newest refusals, oldest
// first; Total counts every refusal since boot (older ones are dropped
// past 1000).
type WorkspaceNetworkLog struct {
	WorkspaceID string              `json:"workspace_id"`
	Entries     []BlockedConnection `json:"entries"`
	Total       int64               `json:"total"`
}

// WorkspaceNetwork shows a workspace's network policy and allow list.
func (c *Client) WorkspaceNetwork(ctx context.Context, ref string) (*WorkspaceNetwork, error) {
	r, _, err := c.workspaces(ctx).Status(ctx, ref)
	if err != nil {
		return nil, err
	}
	return workspaceNetwork(r.ID, r.State, recordPolicy(r.NetworkPolicy), r.Egress), nil
}

// AllowWorkspaceNetwork adds rules to a workspace's allow list. A running
// workspace applies them at once (no restart); every later boot keeps them.
// On a workspace without rules it starts a list: from then on only what
// the list names is allowed.
func (c *Client) AllowWorkspaceNetwork(ctx context.Context, req WorkspaceNetworkChange) (*WorkspaceNetwork, error) {
	return c.changeEgress(ctx, req, func(cur *network.Rules) (*network.Rules, error) {
		base := network.Rules{}
		if cur != nil {
			base = *cur
		}
		next, err := base.Add(network.Rules(req.EgressRules))
		return &next, err
	})
}

// DenyWorkspaceNetwork removes rules from a workspace's allow list. The
// list stays a list even when it becomes empty (then nothing is allowed).
func (c *Client) DenyWorkspaceNetwork(ctx context.Context, req WorkspaceNetworkChange) (*WorkspaceNetwork, error) {
	return c.changeEgress(ctx, req, func(cur *network.Rules) (*network.Rules, error) {
		if cur == nil {
			return nil, errdefs.New(errdefs.ErrFailedPrecondition, CodeNoEgressRules,
				"this workspace has no allow list, so there is no rule to remove").
				WithNext("; %s to start one", "pyro workspace network allow ID RULE", "workspace_network_update")
		}
		less, err := network.Rules(req.EgressRules).Normalize()
		if err != nil {
			return nil, err
		}
		next, err := cur.Remove(less)
		return &next, err
	})
}

func (c *Client) changeEgress(ctx context.Context, req WorkspaceNetworkChange, change func(*network.Rules) (*network.Rules, error)) (*WorkspaceNetwork, error) {
	if network.Rules(req.EgressRules).IsEmpty() {
		return nil, errdefs.InvalidArgument("allow_hosts", "name at least one rule (allow_hosts, allow_cidrs or allow_presets)")
	}
	if _, err := network.Rules(req.EgressRules).Normalize(); err != nil {
		return nil, err
	}
	r, err := c.workspaces(ctx).SetEgress(ctx, req.Workspace, change)
	if err != nil {
		return nil, err
	}
	return workspaceNetwork(r.ID, r.State, recordPolicy(r.NetworkPolicy), r.Egress), nil
}

// WorkspaceNetworkLog returns a running workspace's newest refused DNS
// names and connections, each with its reason. The log lives with the VM:
// a stop clears it.
func (c *Client) WorkspaceNetworkLog(ctx context.Context, ref string) (*WorkspaceNetworkLog, error) {
	r, l, err := c.workspaces(ctx).NetworkLog(ctx, ref)
	if err != nil {
		return nil, err
	}
	out := &WorkspaceNetworkLog{WorkspaceID: r.ID, Entries: toBlocked(l.Entries), Total: l.Total}
	if out.Entries == nil {
		out.Entries = []BlockedConnection{}
	}
	return out, nil
}

func workspaceNetwork(id, state string, policy network.Policy, rules *network.Rules) *WorkspaceNetwork {
	out := &WorkspaceNetwork{WorkspaceID: id, State: state, NetworkPolicy: string(policy), Egress: EgressOpen}
	switch {
	case !policy.Enabled():
		out.Egress = EgressOff
	case rules != nil:
		out.Egress, out.EgressRules = EgressAllowList, EgressRules(*rules)
		for _, p := range rules.AllowPresets {
			if out.PresetHosts == nil {
				out.PresetHosts = map[string][]string{}
			}
			out.PresetHosts[p] = network.Presets[p]
		}
	}
	return out
}
