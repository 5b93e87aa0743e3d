package pyro_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/testutil"
)

// brokerToken is the real value of the brokered secret in these tests.
const brokerToken = "ghp_brokerTestToken_4f9c2a7d1e"

// brokerOutside serves api.test and other.test (HTTPS on 443 with a test
// CA the host side trusts, HTTP on 80) from a network namespace, and
// resolves both names there.
func brokerOutside(t testing.TB) *testutil.AuthEcho {
	t.Helper()
	out := testutil.NewOutside(t)
	ip, _, _ := strings.Cut(out.Addr, ":")
	t.Setenv(network.ResolvConfEnv, out.ServeDNS(t, map[string]string{"api.test": ip, "other.test": ip}))
	echo := out.ServeAuthEcho(t, "api.test", "other.test")
	t.Setenv(network.BrokerCAEnv, echo.CAFile)
	return echo
}

// brokerScript calls both hosts over HTTPS and HTTP with the placeholder
// in Authorization (curl, and Python's urllib), then looks for the real
// value in the guest: environments and command lines of every process,
// and the files under /run, /tmp, /workspace, /etc, /root. The value is
// given in two halves so that no command line holds it; only markers and
// counts are printed.
func brokerScript(upstreamCA string) string {
	half := len(brokerToken) / 2
	return fmt.Sprintf(`A=%s; B=%s
printf '%%s%%s' "$A" "$B" > /dev/shm/needle
cat > /workspace/up-ca.pem <<'EOF'
%sEOF
call() { n=$1; shift
  if curl -sS --max-time 60 -o /tmp/b-$n -D /tmp/h-$n -H "Authorization: Bearer $TOKEN" "$@"; then echo "CALL $n OK"; else echo "CALL $n FAILED"; fi
  grep -qaFf /dev/shm/needle /tmp/b-$n /tmp/h-$n && echo "LEAK $n"
  grep -qF '[REDACTED]' /tmp/b-$n && echo "REDACTED $n"
  grep -qF "$TOKEN" /tmp/b-$n && echo "PLACEHOLDER $n"
}
call api-https https://api.test/
call api-http http://api.test/
call other-https --cacert /workspace/up-ca.pem https://other.test/
call other-http http://other.test/
python3 -c 'import os, urllib.request as u; print("PY", u.urlopen(u.Request("https://api.test/py", headers={"Authorization": "token " + os.environ["TOKEN"]}), timeout=60).status)'
case "$TOKEN" in pyro_brokered_*) echo PLACEHOLDER_ENV;; esac
echo "ENV_LEAKS $(cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | grep -caFf /dev/shm/needle)"
echo "FILE_LEAKS $(grep -rlaFf /dev/shm/needle /run /tmp /workspace /etc /root 2>/dev/null | wc -l)"
echo "INSTALLED $(ls /run/pyro-secrets 2>/dev/null | grep -c TOKEN)"
rm -f /dev/shm/needle
`, brokerToken[:half], brokerToken[half:], upstreamCA)
}

// checkBrokerRun checks what the API saw and what the guest printed.
func checkBrokerRun(t *testing.T, echo *testutil.AuthEcho, placeholder, out string) {
	t.Helper()
	wantLines(t, "broker", out, "CALL api-https OK", "CALL api-http OK", "CALL other-https OK", "CALL other-http OK",
		"REDACTED api-https", "REDACTED api-http", "PLACEHOLDER other-https", "PLACEHOLDER other-http",
		"PY 200", "PLACEHOLDER_ENV", "ENV_LEAKS 0", "FILE_LEAKS 0", "INSTALLED 0")
	if strings.Contains(out, "LEAK ") {
		t.Errorf("the guest saw the value:\n%s", out)
	}
	want := map[string]string{
		"https api.test":   "Bearer " + brokerToken,
		"http api.test":    "Bearer " + brokerToken,
		"https other.test": "Bearer " + placeholder,
		"http other.test":  "Bearer " + placeholder,
	}
	got := map[string]string{}
	py := false
	for _, s := range echo.Seen() {
		if s.Authorization == "token "+brokerToken {
			py = true
			continue
		}
		got[s.Scheme+" "+s.Host] = s.Authorization
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s received Authorization %q, want %q", k, got[k], v)
		}
	}
	if !py {
		t.Errorf("Python's request did not reach api.test with the value: %+v", echo.Seen())
	}
}

// A brokered secret never enters the guest: the guest holds a placeholder,
// the bound host receives the real value (HTTPS through the workspace's CA,
// which the guest's curl and Python trust; HTTP), an unbound host receives
// the placeholder (logged), echoes of the value come back redacted, and
// nothing in the guest, its output or the host's logs holds the value,
// also after stop and start.
func TestWorkspaceSecretBroker(t *testing.T) {
	echo := brokerOutside(t)
	c, state := newWorkspaceClient(t)
	ctx := t.Context()

	secret := func(hosts []string) []pyro.WorkspaceSecret {
		return []pyro.WorkspaceSecret{{Name: "TOKEN", Value: brokerToken, BrokerHosts: hosts}}
	}
	for _, bad := range []struct {
		req  pyro.CreateWorkspaceRequest
		code string
	}{
		{pyro.CreateWorkspaceRequest{Environment: "debian:12-build", NetworkPolicy: "egress", Secrets: secret([]string{})}, "invalid_argument"},
		{pyro.CreateWorkspaceRequest{Environment: "debian:12-build", NetworkPolicy: "egress", Secrets: secret([]string{"bad host"})}, "invalid_argument"},
		{pyro.CreateWorkspaceRequest{Environment: "debian:12-build", Secrets: secret([]string{"api.test"})}, network.CodeBrokerNeedsNetwork},
	} {
		if _, err := c.CreateWorkspace(ctx, bad.req); pyro.ErrorCode(err) != bad.code {
			t.Errorf("%+v: %v, want %s", bad.req.Secrets[0].BrokerHosts, err, bad.code)
		}
	}
	if ws, _ := c.ListWorkspaces(ctx); len(ws) != 0 {
		t.Fatalf("refused creates left %d workspaces", len(ws))
	}

	w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12-build", NetworkPolicy: "egress",
		Secrets: secret([]string{"api.test"})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteWorkspace(context.Background(), w.WorkspaceID) })
	if len(w.Secrets) != 1 || w.Secrets[0].BrokerHosts[0] != "api.test" || !strings.HasPrefix(w.Secrets[0].Placeholder, "pyro_brokered_") {
		t.Fatalf("status secrets %+v", w.Secrets)
	}
	placeholder := w.Secrets[0].Placeholder
	runIn := func(id, when string) {
		t.Helper()
		r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: id, Command: brokerScript(echo.CAPEM),
			SecretEnv: map[string]string{"TOKEN": ""}, TimeoutSeconds: 300})
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		checkBrokerRun(t, echo, placeholder, r.Stdout+r.Stderr)
	}
	run := func(when string) { t.Helper(); runIn(w.WorkspaceID, when) }
	run("first boot")

	log, err := c.WorkspaceNetworkLog(ctx, w.WorkspaceID)
	if err != nil {
		t.Fatal(err)
	}
	logged := false
	for _, e := range log.Entries {
		logged = logged || e.Name == "other.test" && strings.Contains(e.Reason, "TOKEN") && strings.Contains(e.Reason, "not bound")
		if strings.Contains(fmt.Sprint(e), brokerToken) {
			t.Errorf("the network log shows the value: %+v", e)
		}
	}
	if !logged {
		t.Errorf("the placeholder sent to other.test is not logged: %+v", log.Entries)
	}

	// The CA is the workspace's for good: the guest trusts it after a restart.
	if _, err := c.StopWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	run("after stop and start")

	// A fork keeps the secrets, their placeholders and the CA its guest
	// already trusts.
	forked, err := c.ForkWorkspace(ctx, pyro.ForkWorkspaceRequest{Workspace: w.WorkspaceID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteWorkspace(context.Background(), forked.Forks[0].WorkspaceID) })
	runIn(forked.Forks[0].WorkspaceID, "in a fork")

	// The host's logs of the workspace never hold the value either.
	files, _ := filepath.Glob(filepath.Join(state, "workspaces", w.WorkspaceID, "*.log"))
	hist, _ := filepath.Glob(filepath.Join(state, "workspaces", w.WorkspaceID, "*.jsonl"))
	for _, f := range append(files, hist...) {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), brokerToken) {
			t.Errorf("%s holds the value", f)
		}
	}
	if len(files) == 0 {
		t.Error("no supervisor log found to check")
	}
}

// One-shot runs and low-level VMs take brokered secrets too: the command
// gets the placeholder as $NAME, the bound host the value; a delivered
// secret is refused (they have no secret_env).
func TestRunAndVMSecretBroker(t *testing.T) {
	echo := brokerOutside(t)
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	secret := []pyro.WorkspaceSecret{{Name: "TOKEN", Value: brokerToken, BrokerHosts: []string{"api.test"}}}
	const cmd = `curl -sS --max-time 60 -H "Authorization: Bearer $TOKEN" https://api.test/run >/dev/null && echo "OK ${TOKEN%%_*}"`

	if _, err := c.Run(ctx, pyro.RunRequest{Environment: "debian:12-build", Network: true, Command: "true",
		Secrets: []pyro.WorkspaceSecret{{Name: "TOKEN", Value: brokerToken}}}); pyro.ErrorCode(err) != "invalid_argument" {
		t.Errorf("a delivered secret on run: %v", err)
	}
	if _, err := c.Run(ctx, pyro.RunRequest{Environment: "debian:12-build", Command: "true", Secrets: secret}); pyro.ErrorCode(err) != network.CodeBrokerNeedsNetwork {
		t.Errorf("a brokered secret on run without network: %v", err)
	}
	r, err := c.Run(ctx, pyro.RunRequest{Environment: "debian:12-build", Network: true, Command: cmd, TimeoutSeconds: 120, Secrets: secret})
	if err != nil || r.ExitCode != 0 || !strings.Contains(r.Stdout, "OK pyro") {
		t.Fatalf("run: %v %+v", err, r)
	}
	if seen := echo.Seen(); len(seen) != 1 || seen[0].Host != "api.test" || seen[0].Authorization != "Bearer "+brokerToken {
		t.Errorf("run: api.test received %+v", seen)
	}

	v, err := c.CreateVM(ctx, pyro.CreateVMRequest{Environment: "debian:12-build", NetworkPolicy: "egress", Secrets: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer c.DeleteVM(context.Background(), v.VMID)
	if len(v.Secrets) != 1 || v.Secrets[0].Placeholder == "" {
		t.Fatalf("vm secrets %+v", v.Secrets)
	}
	if _, err := c.StartVM(ctx, v.VMID); err != nil {
		t.Fatal(err)
	}
	before := len(echo.Seen())
	r, err = c.ExecVM(ctx, pyro.VMExecRequest{VMID: v.VMID, Command: cmd, TimeoutSeconds: 120})
	if err != nil || r.ExitCode != 0 || !strings.Contains(r.Stdout, "OK pyro") {
		t.Fatalf("vm exec: %v %+v", err, r)
	}
	if seen := echo.Seen(); len(seen) <= before || seen[len(seen)-1].Authorization != "Bearer "+brokerToken {
		t.Errorf("vm exec: api.test received %+v", seen[before:])
	}
}
