package pyro_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/testutil"
)

// egressScript probes from the guest and prints one line per probe:
// DNS name -> address or NXDOMAIN-ish failure, HTTP GET with a Host,
// and a TLS request with a server name (python3: debian:12-build).
func egressScript(ip string, httpPort, tlsPort int, probes ...string) string {
	var b strings.Builder
	b.WriteString(`http() { if out=$(timeout 10 bash -c "exec 3<>/dev/tcp/$1/$2 && printf 'GET / HTTP/1.0\r\nHost: $3\r\n\r\n' >&3 && cat <&3" 2>/dev/null) && [ -n "$out" ]; then echo "HTTP $3 OK $(echo "$out" | tail -1)"; else echo "HTTP $3 REFUSED"; fi; }` + "\n")
	b.WriteString(`dns() { if a=$(getent ahostsv4 $1 | head -1 | cut -d' ' -f1) && [ -n "$a" ]; then echo "DNS $1 $a"; else echo "DNS $1 NONE"; fi; }` + "\n")
	b.WriteString(`tls() { python3 - "$@" <<'PY'
import socket, ssl, sys
host, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    s = socket.create_connection((ip, port), timeout=10)
    t = ssl._create_unverified_context().wrap_socket(s, server_hostname=host)
    t.sendall(("GET / HTTP/1.0\r\nHost: %s\r\n\r\n" % host).encode())
    print("TLS", host, "OK", t.recv(4096).decode().splitlines()[-1])
except Exception as e:
    print("TLS", host, "REFUSED", type(e).__name__)
PY
}` + "\n")
	for _, p := range probes {
		kind, name, _ := strings.Cut(p, " ")
		switch kind {
		case "dns":
			fmt.Fprintf(&b, "dns %s\n", name)
		case "http":
			fmt.Fprintf(&b, "http %s %d %s\n", ip, httpPort, name)
		case "tls":
			fmt.Fprintf(&b, "tls %s %s %d\n", name, ip, tlsPort)
		}
	}
	return b.String()
}

func wantLines(t *testing.T, when, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l) {
			t.Errorf("%s: no %q in\n%s", when, l, out)
		}
	}
}

// A workspace with an allow list reaches the allowed name and nothing else
// (names, addresses by number, a disallowed TLS server name or HTTP Host on
// the shared address); each refusal is logged with its reason; rules
// change while it runs and survive stop/start; bad rules change nothing.
func TestWorkspaceEgressRules(t *testing.T) {
	out := testutil.NewOutside(t)
	ip, _, _ := strings.Cut(out.Addr, ":")
	t.Setenv(network.ResolvConfEnv, out.ServeDNS(t, map[string]string{"allowed.test": ip, "other.test": ip, "far.test": "192.0.2.1"}))
	out.ServeTLS(t, 8443)
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()

	// Bad input: typed errors, no workspace left.
	for _, bad := range []struct {
		req  pyro.CreateWorkspaceRequest
		code string
	}{
		{pyro.CreateWorkspaceRequest{Environment: "debian:12", EgressRules: pyro.EgressRules{AllowHosts: []string{"allowed.test"}}}, network.CodeRulesNeedNetwork},
		{pyro.CreateWorkspaceRequest{Environment: "debian:12", NetworkPolicy: "egress", EgressRules: pyro.EgressRules{AllowHosts: []string{"bad name"}}}, "invalid_argument"},
		{pyro.CreateWorkspaceRequest{Environment: "debian:12", NetworkPolicy: "egress", EgressRules: pyro.EgressRules{AllowCIDRs: []string{"10.0.0.1/8"}}}, "invalid_argument"},
		{pyro.CreateWorkspaceRequest{Environment: "debian:12", NetworkPolicy: "egress", EgressRules: pyro.EgressRules{AllowPresets: []string{"everything"}}}, "invalid_argument"},
	} {
		if _, err := c.CreateWorkspace(ctx, bad.req); pyro.ErrorCode(err) != bad.code {
			t.Errorf("%+v: %v, want %s", bad.req.EgressRules, err, bad.code)
		}
	}
	if ws, _ := c.ListWorkspaces(ctx); len(ws) != 0 {
		t.Fatalf("refused creates left %d workspaces", len(ws))
	}

	w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12-build", NetworkPolicy: "egress",
		EgressRules: pyro.EgressRules{AllowHosts: []string{"allowed.test"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteWorkspace(context.Background(), w.WorkspaceID) })
	if w.Egress == nil || len(w.Egress.AllowHosts) != 1 {
		t.Fatalf("status egress_rules %+v", w.Egress)
	}
	exec := func(cmd string) string {
		t.Helper()
		r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: cmd, TimeoutSeconds: 120})
		if err != nil {
			t.Fatal(err)
		}
		return r.Stdout
	}
	// By number before any DNS answer, then names, then the shared address.
	got := exec(egressScript(ip, 8080, 8443, "http "+ip, "dns allowed.test", "dns other.test", "dns far.test",
		"http allowed.test", "http other.test", "tls allowed.test", "tls other.test"))
	wantLines(t, "allow list", got, "HTTP "+ip+" REFUSED", "DNS allowed.test "+ip, "DNS other.test NONE", "DNS far.test NONE",
		"HTTP allowed.test OK "+strings.TrimSpace(out.Body), "HTTP other.test REFUSED", "TLS allowed.test OK tls hello allowed.test", "TLS other.test REFUSED")

	log, err := c.WorkspaceNetworkLog(ctx, w.WorkspaceID)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ proto, name, reason string }{
		{"tcp", "", "no DNS answer for an allowed name"},
		{"dns", "other.test", "NXDOMAIN"},
		{"dns", "far.test", "NXDOMAIN"},
		{"tcp", "other.test", "HTTP names host"},
		{"tcp", "other.test", "TLS names host"},
	} {
		found := false
		for _, e := range log.Entries {
			found = found || e.Protocol == want.proto && e.Name == want.name && strings.Contains(e.Reason, want.reason) && !e.Time.IsZero()
		}
		if !found {
			t.Errorf("log has no %+v:\n%+v", want, log.Entries)
		}
	}

	// Live change: the name goes, a range comes; no restart.
	if _, err := c.DenyWorkspaceNetwork(ctx, pyro.WorkspaceNetworkChange{Workspace: w.WorkspaceID, EgressRules: pyro.EgressRules{AllowHosts: []string{"nothere.test"}}}); pyro.ErrorCode(err) != "invalid_argument" {
		t.Errorf("deny of a rule that is not there: %v", err)
	}
	if _, err := c.AllowWorkspaceNetwork(ctx, pyro.WorkspaceNetworkChange{Workspace: w.WorkspaceID, EgressRules: pyro.EgressRules{AllowCIDRs: []string{"bad"}}}); pyro.ErrorCode(err) != "invalid_argument" {
		t.Errorf("allow of a bad rule: %v", err)
	}
	if _, err := c.DenyWorkspaceNetwork(ctx, pyro.WorkspaceNetworkChange{Workspace: w.WorkspaceID, EgressRules: pyro.EgressRules{AllowHosts: []string{"allowed.test"}}}); err != nil {
		t.Fatal(err)
	}
	n, err := c.AllowWorkspaceNetwork(ctx, pyro.WorkspaceNetworkChange{Workspace: w.WorkspaceID, EgressRules: pyro.EgressRules{AllowCIDRs: []string{ip + "/32:8080"}}})
	if err != nil || n.Egress != pyro.EgressAllowList || len(n.AllowHosts) != 0 || len(n.AllowCIDRs) != 1 {
		t.Fatalf("allow: %v %+v", err, n)
	}
	after := func(when string) {
		t.Helper()
		got := exec(egressScript(ip, 8080, 8443, "dns allowed.test", "http "+ip, "tls allowed.test"))
		wantLines(t, when, got, "DNS allowed.test NONE", "HTTP "+ip+" OK "+strings.TrimSpace(out.Body), "TLS allowed.test REFUSED")
	}
	after("after a live change")
	if _, err := c.StopWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	if n, err := c.WorkspaceNetwork(ctx, w.WorkspaceID); err != nil || len(n.AllowCIDRs) != 1 || n.AllowCIDRs[0] != ip+"/32:8080" {
		t.Fatalf("rules after stop/start: %v %+v", err, n)
	}
	after("after stop and start")
}

// vm_create records its allow list (it boots nothing): the VM and its
// network info show it; rules without a network are refused.
func TestCreateVMEgressRules(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	rules := pyro.EgressRules{AllowPresets: []string{"goproxy"}, AllowCIDRs: []string{"192.0.2.0/24:443"}}
	if _, err := c.CreateVM(ctx, pyro.CreateVMRequest{Environment: "debian:12", EgressRules: rules}); pyro.ErrorCode(err) != network.CodeRulesNeedNetwork {
		t.Fatalf("rules on policy off: %v", err)
	}
	v, err := c.CreateVM(ctx, pyro.CreateVMRequest{Environment: "debian:12", NetworkPolicy: "egress", EgressRules: rules})
	if err != nil {
		t.Fatal(err)
	}
	defer c.DeleteVM(context.Background(), v.VMID)
	n, err := c.VMNetworkInfo(ctx, v.VMID)
	if err != nil || v.Egress == nil || n.Egress == nil || n.Egress.AllowPresets[0] != "goproxy" || n.Egress.AllowCIDRs[0] != "192.0.2.0/24:443" {
		t.Fatalf("vm %+v, network %v %+v", v.Egress, err, n)
	}
}
