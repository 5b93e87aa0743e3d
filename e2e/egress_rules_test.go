package e2e_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/testutil"
)

// The allow list on the CLI (run, workspace create, workspace network
// allow|deny|show|log) and MCP (workspace_network_show/log always,
// workspace_network_update only with --allow-network-changes).
func TestCLIAndMCPEgressRules(t *testing.T) {
	s := stateDir(t)
	out := testutil.NewOutside(t)
	ip, _, _ := strings.Cut(out.Addr, ":")
	t.Setenv(network.ResolvConfEnv, out.ServeDNS(t, map[string]string{"allowed.test": ip, "other.test": ip}))
	fetch := `getent hosts other.test || echo "other.test: no address"; ` +
		`exec 3<>/dev/tcp/allowed.test/8080 && printf 'GET / HTTP/1.0\r\nHost: allowed.test\r\n\r\n' >&3 && cat <&3`

	r := runPyro(t, s, "run", "debian:12", "--network", "--allow-host", "allowed.test", "--json", "--", "bash", "-c", fetch)
	var res struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
		Blocked  []struct {
			Protocol, Name, Reason string
		} `json:"blocked_connections"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.ExitCode != 0 || !strings.Contains(res.Stdout, out.Body) ||
		!strings.Contains(res.Stdout, "other.test: no address") {
		t.Fatalf("run with an allow list: %v %+v", err, r)
	}
	if len(res.Blocked) == 0 || res.Blocked[0].Protocol != "dns" || res.Blocked[0].Name != "other.test" {
		t.Errorf("blocked_connections %+v", res.Blocked)
	}
	if r := runPyro(t, s, "run", "debian:12", "--allow-host", "allowed.test", "--json", "--", "true"); r.code != 125 || !strings.Contains(r.stdout, network.CodeRulesNeedNetwork) {
		t.Errorf("rules without --network: %+v", r)
	}

	r = runPyro(t, s, "workspace", "create", "debian:12", "--network-policy", "egress", "--allow-host", "allowed.test", "--id-only")
	if r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	id := strings.TrimSpace(r.stdout)
	defer runPyro(t, s, "workspace", "delete", id)
	if r := runPyro(t, s, "workspace", "exec", id, "--", "getent hosts other.test"); r.code == 0 {
		t.Errorf("other.test resolved: %+v", r)
	}
	r = runPyro(t, s, "workspace", "network", "log", id)
	if r.code != 0 || !strings.Contains(r.stdout, "other.test") || !strings.Contains(r.stdout, "NXDOMAIN") {
		t.Errorf("network log: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "network", "allow", id, "--allow-cidr", "10.0.0.1/8"); r.code != 125 || !strings.Contains(r.stderr, "host bits") {
		t.Errorf("a bad CIDR: %+v", r)
	}
	r = runPyro(t, s, "workspace", "network", "allow", id, "--allow-preset", "pypi", "--json")
	var shown struct {
		Egress       string              `json:"egress"`
		AllowHosts   []string            `json:"allow_hosts"`
		AllowPresets []string            `json:"allow_presets"`
		PresetHosts  map[string][]string `json:"preset_hosts"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil || shown.Egress != "allowlist" || !slices.Equal(shown.AllowPresets, []string{"pypi"}) ||
		!slices.Contains(shown.PresetHosts["pypi"], "pypi.org") {
		t.Fatalf("allow: %v %+v", err, r)
	}

	// MCP: the read-only tools always; the changing one only when the operator says so.
	plain := mcpSession(t, s, "workspace-core")
	tools, err := plain.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, tl := range tools.Tools {
		names[tl.Name] = true
	}
	if !names["workspace_network_show"] || !names["workspace_network_log"] || names["workspace_network_update"] {
		t.Errorf("default MCP tools: %v", names)
	}
	var logRes struct {
		Entries []struct{ Name string } `json:"entries"`
	}
	callTool(t, plain, "workspace_network_log", map[string]any{"workspace_id": id}, &logRes)
	if len(logRes.Entries) == 0 {
		t.Errorf("workspace_network_log: %+v", logRes)
	}
	open := mcpSession(t, s, "workspace-core", "--allow-network-changes")
	shown.AllowPresets, shown.AllowHosts = nil, nil
	callTool(t, open, "workspace_network_update", map[string]any{"workspace_id": id, "action": "deny", "allow_presets": []string{"pypi"}}, &shown)
	if len(shown.AllowPresets) != 0 || !slices.Equal(shown.AllowHosts, []string{"allowed.test"}) {
		t.Errorf("workspace_network_update deny: %+v", shown)
	}
	res2, err := open.CallTool(t.Context(), &mcp.CallToolParams{Name: "workspace_network_update",
		Arguments: map[string]any{"workspace_id": id, "action": "allow", "allow_hosts": []string{"*.org"}}})
	if err != nil || !res2.IsError || !strings.Contains(fmt.Sprint(res2.Content[0]), "invalid_argument") {
		t.Errorf("a top-level wildcard over MCP: %v %+v", err, res2)
	}
	var sh struct {
		AllowHosts []string `json:"allow_hosts"`
	}
	callTool(t, plain, "workspace_network_show", map[string]any{"workspace_id": id}, &sh)
	if !slices.Equal(sh.AllowHosts, []string{"allowed.test"}) {
		t.Errorf("workspace_network_show after a refused change: %+v", sh)
	}
}
