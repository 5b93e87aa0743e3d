package e2e_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/testutil"
)

// A team publishes debian:12-base once with "pyro env push"; a host with
// an empty cache and no builders (no mmdebstrap, dpkg-query or compiler)
// pointed at the registry by PYRO_ENV_REGISTRY then runs it, through the
// CLI and through the MCP server (official Go client).
func TestCLIAndMCPPublishedEnv(t *testing.T) {
	s := stateDir(t)
	host := testutil.Registry(t, "", "")
	ref := host + "/pyro/debian:12-base"
	if r := runPyro(t, s, "env", "pull", "debian:12-base"); r.code != 0 {
		t.Fatalf("env pull: %+v", r)
	}
	r := runPyro(t, s, "env", "push", "debian:12-base", ref)
	if r.code != 125 || !strings.Contains(r.stderr, "--insecure-registry "+host) {
		t.Fatalf("push to an unnamed plain-HTTP registry: %+v", r)
	}
	r = runPyro(t, s, "env", "push", "--insecure-registry", host, "--json", "debian:12-base", ref)
	var pushed struct {
		Reference    string `json:"reference"`
		Digest       string `json:"digest"`
		ArtifactType string `json:"artifact_type"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &pushed); err != nil || r.code != 0 || pushed.Reference != ref ||
		pushed.ArtifactType != "application/vnd.pyro.environment.v1+json" || !strings.HasPrefix(pushed.Digest, "sha256:") {
		t.Fatalf("env push --json: %v %+v", err, r)
	}

	testutil.PathWithout(t, testutil.LocalBuilders...)
	t.Setenv("PYRO_CACHE_DIR", t.TempDir())
	t.Setenv("PYRO_ENV_REGISTRY", host+"/pyro")
	t.Setenv("PYRO_INSECURE_REGISTRIES", host)
	r = runPyro(t, s, "run", "--json", "debian:12-base", "--", "uname -r")
	var run struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &run); err != nil || r.code != 0 || !strings.HasPrefix(run.Stdout, "6.1.") {
		t.Fatalf("pyro run from the environment registry: %v %+v", err, r)
	}
	r = runPyro(t, s, "env", "inspect", "--json", "debian:12-base")
	var m struct {
		Kernel    struct{ Release string } `json:"kernel"`
		Published struct {
			Reference string `json:"reference"`
			Digest    string `json:"digest"`
		} `json:"published"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || m.Published.Digest != pushed.Digest || run.Stdout != m.Kernel.Release+"\n" {
		t.Fatalf("env inspect: %v %+v", err, r)
	}
	r = runPyro(t, s, "env", "inspect", "debian:12-base")
	if !strings.Contains(r.stdout, "published: "+ref+"@"+pushed.Digest) {
		t.Errorf("env inspect does not say where it came from:\n%s", r.stdout)
	}

	// Another such host runs an OCI image no one here built: converted
	// locally, with the guest kernel from the environment registry.
	t.Setenv("PYRO_CACHE_DIR", t.TempDir())
	img := host + "/e2e/bb:1"
	testutil.Push(t, img, testutil.Image(t, []string{"PATH=/bin", "GREETING=from-image"}, testutil.BusyboxLayer(t)))
	r = runPyro(t, s, "run", "--json", img, "--", "echo $GREETING; uname -r")
	if err := json.Unmarshal([]byte(r.stdout), &run); err != nil || r.code != 0 || run.Stdout != "from-image\n"+m.Kernel.Release+"\n" {
		t.Fatalf("pyro run of an image with the kernel from the registry: %v %+v", err, r)
	}

	// The MCP server of another such host.
	t.Setenv("PYRO_CACHE_DIR", t.TempDir())
	cs := mcpSession(t, s, "vm-run")
	var out struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	callTool(t, cs, "vm_run", map[string]any{"environment": "debian:12-base", "command": "uname -r", "timeout_seconds": 120}, &out)
	if out.ExitCode != 0 || out.Stdout != m.Kernel.Release+"\n" {
		t.Fatalf("vm_run from the environment registry: %+v", out)
	}
}
