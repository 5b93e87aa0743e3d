package pyro_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
)

// BenchmarkEgressVM is issue 14's figures with real guests: three
// workspaces (plain egress, an allow list, the secret broker) call the
// same HTTPS API in a network namespace, in turn, each round: setup time
// (10 new connections, each a TLS handshake and one small request, by
// curl in the guest) and throughput (one testutil.BigBody download). Reported per
// mode and as ratios to plain egress. Under software emulation the
// guest's own TLS dominates; internal/network's BenchmarkEgress* isolate
// the egress point.
//
//	PYRO_BIN_DIR=$PWD/bin go test -run '^$' -bench BenchmarkEgressVM -benchtime 3x .
func BenchmarkEgressVM(b *testing.B) {
	echo := brokerOutside(b)
	c, _ := newWorkspaceClient(b)
	ctx := b.Context()
	type mode struct {
		name string
		req  pyro.CreateWorkspaceRequest
		env  map[string]string
		ca   string
	}
	modes := []mode{
		{name: "plain", ca: "--cacert /workspace/bundle.pem"},
		{name: "allowlist", ca: "--cacert /workspace/bundle.pem", req: pyro.CreateWorkspaceRequest{EgressRules: pyro.EgressRules{AllowHosts: []string{"api.test"}}}},
		{name: "broker", env: map[string]string{"TOKEN": ""}, req: pyro.CreateWorkspaceRequest{
			Secrets: []pyro.WorkspaceSecret{{Name: "TOKEN", Value: brokerToken, BrokerHosts: []string{"api.test"}}}}},
	}
	ids := make([]string, len(modes))
	for i, m := range modes {
		m.req.Environment, m.req.NetworkPolicy = "debian:12-build", "egress"
		w, err := c.CreateWorkspace(ctx, m.req)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = w.WorkspaceID
		b.Cleanup(func() { c.DeleteWorkspace(b.Context(), w.WorkspaceID) })
		if _, err := c.WriteWorkspaceFile(ctx, pyro.WriteFileRequest{Workspace: w.WorkspaceID, Path: "up-ca.pem", Content: []byte(echo.CAPEM)}); err != nil {
			b.Fatal(err)
		}
	}
	// Every mode loads a full system bundle (curl parses it at each start,
	// which under emulation costs more than a handshake): the broker's is
	// the system bundle plus its CA, the others' the system bundle plus
	// the test CA.
	script := func(ca string) string {
		return fmt.Sprintf(`set -e
[ -f /workspace/bundle.pem ] || cat /etc/ssl/certs/ca-certificates.crt /workspace/up-ca.pem > /workspace/bundle.pem
curl -sS -o /dev/null %[1]s -H "Authorization: Bearer ${TOKEN:-none}" https://api.test/warm
s=$(date +%%s%%N); for i in 1 2 3 4 5 6 7 8 9 10; do curl -sS -o /dev/null %[1]s -H "Authorization: Bearer ${TOKEN:-none}" https://api.test/; done; e=$(date +%%s%%N)
echo "SETUP_MS $(( (e - s) / 10000000 ))"
echo "SPEED $(curl -sS -o /dev/null %[1]s -w '%%{speed_download}' https://api.test/big)"`, ca)
	}
	setup := make([]float64, len(modes))
	speed := make([]float64, len(modes))
	b.ResetTimer()
	for range b.N {
		for i, m := range modes {
			r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ids[i], Command: script(m.ca), SecretEnv: m.env, TimeoutSeconds: 600})
			if err != nil || r.ExitCode != 0 {
				b.Fatalf("%s: %v %+v", m.name, err, r)
			}
			setup[i] += field(b, r.Stdout, "SETUP_MS")
			speed[i] += field(b, r.Stdout, "SPEED") / 1e6
		}
	}
	for i, m := range modes {
		b.ReportMetric(setup[i]/float64(b.N), m.name+"-ms/conn")
		b.ReportMetric(speed[i]/float64(b.N), m.name+"-MB/s")
		if i > 0 {
			b.ReportMetric(setup[i]/setup[0], m.name+"/plain-setup")
			b.ReportMetric(speed[i]/speed[0], m.name+"/plain-MB/s")
		}
	}
}

func field(b *testing.B, out, key string) float64 {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, key+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				b.Fatal(err)
			}
			return f
		}
	}
	b.Fatalf("no %s in %q", key, out)
	return 0
}
