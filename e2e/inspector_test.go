package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/testutil"
)

// inspector runs the official MCP Inspector CLI (e2e/inspector, installed by
// `make test` with npm ci, with the Node 22 it needs) and returns its stderr.
func inspector(t *testing.T, state string, args ...string) string {
	t.Helper()
	bin := filepath.Join(testutil.RepoRoot(), "e2e", "inspector", "node_modules", ".bin")
	if _, err := os.Stat(filepath.Join(bin, "mcp-inspector")); err != nil {
		t.Fatalf("the MCP Inspector is not installed: run `npm ci --prefix e2e/inspector` (make test does): %v", err)
	}
	cmd := exec.Command(filepath.Join(bin, "mcp-inspector"), append([]string{"--cli", "--strict", "--method", "tools/list", "-e", "PYRO_STATE_DIR=" + state}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "PYRO_STATE_DIR="+state, "HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("inspector %v: %v\n%s\n%s", args, err, out, stderr.String())
	}
	if !strings.Contains(string(out), `"tools"`) {
		t.Fatalf("inspector listed no tools: %s", out)
	}
	return stderr.String()
}

// problems are the Inspector's warning and error reports.
func problems(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "Warning") || strings.HasPrefix(l, "Error") {
			out = append(out, l)
		}
	}
	return out
}

// The Inspector in --strict mode finds nothing to warn about in any profile,
// over stdio and over Streamable HTTP.
func TestInspectorStrictHasNoWarnings(t *testing.T) {
	s := t.TempDir()
	pyro := filepath.Join(testutil.Binaries(t), "pyro")
	for _, p := range []string{"vm-run", "workspace-core", "workspace-full"} {
		if e := inspector(t, s, pyro, "mcp", "serve", "--profile", p); len(problems(e)) > 0 {
			t.Errorf("stdio %s:\n%s", p, e)
		}
	}
	// Over HTTP with the operator-gated tools too.
	endpoint := startHTTPServer(t, s, "insp-token", "--profile", "workspace-full", "--allow-build", "--allow-network-changes")
	if e := inspector(t, s, "--transport", "http", "--server-url", endpoint, "--header", "Authorization: Bearer insp-token"); len(problems(e)) > 0 {
		t.Errorf("http:\n%s", e)
	}
}
