package e2e_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/testutil"
)

// fetchScript prints what GET / of addr answers, through bash's /dev/tcp.
func fetchScript(addr string) string {
	host, port, _ := strings.Cut(addr, ":")
	return fmt.Sprintf(`exec 3<>/dev/tcp/%s/%s && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3`, host, port)
}

// `pyro run --network` reaches a machine outside this host; without it the
// same command fails; the gateway (this host) is closed.
func TestCLIRunNetwork(t *testing.T) {
	s := stateDir(t)
	out := testutil.NewOutside(t)
	r := runPyro(t, s, "run", "debian:12", "--network", "--json", "--", "bash", "-c", fetchScript(out.Addr))
	var res struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.ExitCode != 0 || !strings.Contains(res.Stdout, out.Body) {
		t.Fatalf("run --network: %v %+v", err, r)
	}
	if r := runPyro(t, s, "run", "debian:12", "--", "bash", "-c", fetchScript(out.Addr)); r.code == 0 {
		t.Errorf("without --network the guest reached %s: %+v", out.Addr, r)
	}
	if r := runPyro(t, s, "run", "debian:12", "--network", "--", "bash", "-c", fetchScript("10.0.2.2:22")); r.code == 0 {
		t.Errorf("the gateway answered: %+v", r)
	}
}

// MCP: vm_run with network, and a workspace whose service publishes a port
// that the host then reads on 127.0.0.1.
func TestMCPNetwork(t *testing.T) {
	s := stateDir(t)
	out := testutil.NewOutside(t)
	cs := mcpSession(t, s, "workspace-full")
	call := func(name string, args map[string]any) map[string]any {
		t.Helper()
		var res map[string]any
		callTool(t, cs, name, args, &res)
		return res
	}
	r := call("vm_run", map[string]any{"environment": "debian:12", "network": true, "command": "bash <<'EOF'\n" + fetchScript(out.Addr) + "\nEOF\n"})
	if !strings.Contains(r["stdout"].(string), out.Body) {
		t.Fatalf("vm_run with network: %v", r)
	}
	ws := call("workspace_create", map[string]any{"environment": "debian:12-build", "network_policy": "egress+published-ports"})
	id := ws["workspace_id"].(string)
	defer call("workspace_delete", map[string]any{"workspace_id": id})
	if ws["network_policy"] != "egress+published-ports" {
		t.Errorf("workspace_create: %v", ws)
	}
	svc := call("service_start", map[string]any{"workspace_id": id, "name": "web",
		"command": "echo from-mcp > index.html && exec python3 -m http.server 8000", "ready_http": "http://127.0.0.1:8000/",
		"published_ports": []any{map[string]any{"guest_port": 8000}}})
	ports, _ := svc["published_ports"].([]any)
	if len(ports) != 1 {
		t.Fatalf("service_start: %v", svc)
	}
	hostPort := int(ports[0].(map[string]any)["host_port"].(float64))
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/index.html", hostPort))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "from-mcp\n" {
		t.Errorf("published port answered %q", body)
	}
	call("service_stop", map[string]any{"workspace_id": id, "name": "web"})
}
