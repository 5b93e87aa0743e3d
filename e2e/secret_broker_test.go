package e2e_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/testutil"
)

const brokerToken = "ghp_e2eBrokerToken_7b3e91c0"

// brokerCurl calls api.test (bound) over HTTPS and HTTP and other.test
// (unbound) over HTTP with the placeholder, and reports whether the real
// value reached the guest anywhere it looks (given in halves, so that no
// command line holds it).
const brokerCurl = `printf '%s%s' "$HALF1" "$HALF2" > /dev/shm/needle
for u in https://api.test/ http://api.test/ http://other.test/; do
  curl -sS --max-time 60 -H "Authorization: Bearer $TOKEN" "$u" > /tmp/b && echo "OK $u"
  grep -qaFf /dev/shm/needle /tmp/b && echo "LEAK $u"
done
echo "ENV_LEAKS $(cat /proc/[0-9]*/environ 2>/dev/null | grep -caFf /dev/shm/needle)"
rm -f /dev/shm/needle`

func brokerEnvArgs() []string {
	h := len(brokerToken) / 2
	return []string{"--env", "HALF1=" + brokerToken[:h], "--env", "HALF2=" + brokerToken[h:]}
}

// checkBrokerSeen checks that api.test got the value (both schemes) and
// other.test the placeholder.
func checkBrokerSeen(t *testing.T, echo *testutil.AuthEcho, placeholder string) {
	t.Helper()
	got := map[string]string{}
	for _, s := range echo.Seen() {
		got[s.Scheme+" "+s.Host] = s.Authorization
	}
	for k, v := range map[string]string{"https api.test": "Bearer " + brokerToken, "http api.test": "Bearer " + brokerToken, "http other.test": "Bearer " + placeholder} {
		if got[k] != v {
			t.Errorf("%s received %q, want %q", k, got[k], v)
		}
	}
}

// Brokered secrets on the CLI (--secret-broker) and over MCP
// (secrets[].broker_hosts): bad input is refused before anything is made,
// the bound host gets the value, the guest and the unbound host the
// placeholder.
func TestCLIAndMCPSecretBroker(t *testing.T) {
	s := stateDir(t)
	out := testutil.NewOutside(t)
	ip, _, _ := strings.Cut(out.Addr, ":")
	t.Setenv(network.ResolvConfEnv, out.ServeDNS(t, map[string]string{"api.test": ip, "other.test": ip}))
	echo := out.ServeAuthEcho(t, "api.test", "other.test")
	t.Setenv(network.BrokerCAEnv, echo.CAFile)

	if r := runPyro(t, s, "workspace", "create", "debian:12-build", "--network-policy", "egress", "--secret-broker", "TOKEN=api.test"); r.code != 2 || !strings.Contains(r.stderr, "no --secret") {
		t.Errorf("a broker for no secret: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "create", "debian:12-build", "--network-policy", "egress", "--secret", "TOKEN="+brokerToken, "--secret-broker", "TOKEN="); r.code != 125 || !strings.Contains(r.stderr, "invalid_argument") || !strings.Contains(r.stderr, "bound to no host") {
		t.Errorf("a broker bound to no host: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "create", "debian:12-build", "--secret", "TOKEN="+brokerToken, "--secret-broker", "TOKEN=api.test"); r.code != 125 || !strings.Contains(r.stderr, network.CodeBrokerNeedsNetwork) {
		t.Errorf("a broker without a network: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "list", "--json"); strings.Contains(r.stdout, "workspace_id") {
		t.Fatalf("refused creates left a workspace: %s", r.stdout)
	}

	r := runPyro(t, s, "workspace", "create", "debian:12-build", "--network-policy", "egress", "--secret", "TOKEN="+brokerToken,
		"--secret-broker", "TOKEN=api.test", "--json")
	var w struct {
		ID      string `json:"workspace_id"`
		Secrets []struct {
			Name        string   `json:"name"`
			BrokerHosts []string `json:"broker_hosts"`
			Placeholder string   `json:"placeholder"`
		} `json:"secrets"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &w); err != nil || r.code != 0 || len(w.Secrets) != 1 || w.Secrets[0].Placeholder == "" {
		t.Fatalf("create: %v %+v", err, r)
	}
	defer runPyro(t, s, "workspace", "delete", w.ID)
	if strings.Contains(r.stdout, brokerToken) {
		t.Errorf("create shows the value: %s", r.stdout)
	}
	if r := runPyro(t, s, "workspace", "status", w.ID); !strings.Contains(r.stdout, "brokered to api.test") || !strings.Contains(r.stdout, w.Secrets[0].Placeholder) {
		t.Errorf("status: %+v", r)
	}
	args := append([]string{"workspace", "exec", w.ID, "--timeout-seconds", "300", "--secret-env", "TOKEN"}, brokerEnvArgs()...)
	r = runPyro(t, s, append(args, "--", brokerCurl)...)
	for _, want := range []string{"OK https://api.test/", "OK http://api.test/", "OK http://other.test/", "ENV_LEAKS 0"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("CLI exec: no %q in %+v", want, r)
		}
	}
	if strings.Contains(r.stdout, "LEAK ") {
		t.Errorf("CLI exec: the guest saw the value: %s", r.stdout)
	}
	checkBrokerSeen(t, echo, w.Secrets[0].Placeholder)
	if r := runPyro(t, s, "workspace", "network", "log", w.ID); !strings.Contains(r.stdout, "other.test") || !strings.Contains(r.stdout, "not bound") {
		t.Errorf("network log: %+v", r)
	}

	// MCP: the same through workspace_create and workspace_exec.
	cs := mcpSession(t, s, "workspace-core")
	bad, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "workspace_create", Arguments: map[string]any{
		"environment": "debian:12-build", "network_policy": "egress",
		"secrets": []map[string]any{{"name": "TOKEN", "value": brokerToken, "broker_hosts": []string{}}}}})
	if err != nil || !bad.IsError || !strings.Contains(toolText(bad), "invalid_argument") {
		t.Errorf("MCP broker bound to no host: %v %+v", err, bad)
	}
	var mw struct {
		ID      string `json:"workspace_id"`
		Secrets []struct {
			Placeholder string `json:"placeholder"`
		} `json:"secrets"`
	}
	callTool(t, cs, "workspace_create", map[string]any{"environment": "debian:12-build", "network_policy": "egress",
		"secrets": []map[string]any{{"name": "TOKEN", "value": brokerToken, "broker_hosts": []string{"api.test"}}}}, &mw)
	defer runPyro(t, s, "workspace", "delete", mw.ID)
	if len(mw.Secrets) != 1 || mw.Secrets[0].Placeholder == "" || mw.Secrets[0].Placeholder == w.Secrets[0].Placeholder {
		t.Fatalf("MCP create secrets %+v (the CLI workspace's placeholder is %s)", mw.Secrets, w.Secrets[0].Placeholder)
	}
	h := len(brokerToken) / 2
	var ex struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	callTool(t, cs, "workspace_exec", map[string]any{"workspace_id": mw.ID, "command": brokerCurl, "timeout_seconds": 300,
		"secret_env": map[string]string{"TOKEN": ""}, "env": map[string]string{"HALF1": brokerToken[:h], "HALF2": brokerToken[h:]}}, &ex)
	for _, want := range []string{"OK https://api.test/", "OK http://api.test/", "OK http://other.test/", "ENV_LEAKS 0"} {
		if !strings.Contains(ex.Stdout, want) {
			t.Errorf("MCP exec: no %q in %+v", want, ex)
		}
	}
	if strings.Contains(ex.Stdout, "LEAK ") {
		t.Errorf("MCP exec: the guest saw the value: %s", ex.Stdout)
	}
	checkBrokerSeen(t, echo, mw.Secrets[0].Placeholder)

	// One-shot runs: pyro run and vm_run.
	const runCmd = `curl -sS --max-time 60 -H "Authorization: Bearer $TOKEN" https://api.test/run >/dev/null && echo "OK ${TOKEN%%_*}"`
	if r := runPyro(t, s, "run", "debian:12-build", "--network", "--secret", "TOKEN="+brokerToken, "--", "true"); r.code != 125 || !strings.Contains(r.stderr, "not brokered") {
		t.Errorf("run with a delivered secret: %+v", r)
	}
	n := len(echo.Seen())
	r = runPyro(t, s, "run", "debian:12-build", "--network", "--timeout-seconds", "120", "--secret", "TOKEN="+brokerToken, "--secret-broker", "TOKEN=api.test", "--", runCmd)
	if r.code != 0 || !strings.Contains(r.stdout, "OK pyro") {
		t.Errorf("pyro run: %+v", r)
	}
	var rr struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	callTool(t, cs, "vm_run", map[string]any{"environment": "debian:12-build", "network": true, "command": runCmd, "timeout_seconds": 120,
		"secrets": []map[string]any{{"name": "TOKEN", "value": brokerToken, "broker_hosts": []string{"api.test"}}}}, &rr)
	if rr.ExitCode != 0 || !strings.Contains(rr.Stdout, "OK pyro") {
		t.Errorf("vm_run: %+v", rr)
	}
	seen := echo.Seen()[n:]
	if len(seen) != 2 || seen[0].Authorization != "Bearer "+brokerToken || seen[1].Authorization != "Bearer "+brokerToken {
		t.Errorf("runs: api.test received %+v", seen)
	}
}
