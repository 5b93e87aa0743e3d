package e2e_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro/internal/testutil"
)

// The CLI and the MCP server (official Go client) run commands in an image
// pulled from a registry in this process; the MCP server pulls only what
// its operator allows.
func TestCLIAndMCPRunInPulledImage(t *testing.T) {
	s := stateDir(t)
	// A private cache (kernel shared): test images never reach the shared one.
	t.Setenv("PYRO_CACHE_DIR", testutil.CacheWithKernel(t))
	host := testutil.Registry(t, "", "")
	img := testutil.Image(t, []string{"PATH=/bin", "GREETING=from-image"}, testutil.BusyboxLayer(t))
	ref := host + "/e2e/bb:1"
	testutil.Push(t, ref, img)

	// CLI: plain HTTP is refused unless the registry is named.
	r := runPyro(t, s, "run", ref, "--", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "--insecure-registry "+host) {
		t.Fatalf("unnamed plain-HTTP registry: %+v", r)
	}
	r = runPyro(t, s, "run", "--insecure-registry", host, "--json", ref, "--", `echo "$GREETING"; busybox | head -1 | cut -c1-7`)
	var run struct {
		ExitCode    int    `json:"exit_code"`
		Stdout      string `json:"stdout"`
		Environment string `json:"environment"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &run); err != nil || r.code != 0 || !strings.HasPrefix(run.Stdout, "from-image\n") {
		t.Fatalf("pyro run: %v %+v", err, r)
	}
	r = runPyro(t, s, "env", "list")
	if !strings.Contains(r.stdout, ref) || !strings.Contains(r.stdout, "oci") {
		t.Errorf("env list:\n%s", r.stdout)
	}
	r = runPyro(t, s, "env", "inspect", ref)
	if r.code != 0 || !strings.Contains(r.stdout, "layers:   1") || !strings.Contains(r.stdout, "GREETING=from-image") || !strings.Contains(r.stdout, "working_dir: /srv") {
		t.Errorf("env inspect:\n%s%s", r.stdout, r.stderr)
	}

	// MCP without --allow-pull: a reference not in the cache is refused,
	// naming what is local.
	other := host + "/e2e/other:1"
	testutil.Push(t, other, img)
	cs := mcpSession(t, s, "vm-run", "--insecure-registry", host)
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "vm_run", Arguments: map[string]any{"environment": other, "command": "true"}})
	if err != nil || !res.IsError || !strings.Contains(toolText(res), "pull_not_allowed") || !strings.Contains(toolText(res), ref) {
		t.Fatalf("not allowed: %v %s", err, toolText(res))
	}
	// The already pulled one runs.
	var out struct {
		Stdout string `json:"stdout"`
	}
	callTool(t, cs, "vm_run", map[string]any{"environment": ref, "command": "echo $GREETING"}, &out)
	if out.Stdout != "from-image\n" {
		t.Fatalf("vm_run in a pulled image: %q", out.Stdout)
	}

	// With --allow-pull the model's reference is pulled on first use, and
	// the pull's progress reaches the client.
	var mu sync.Mutex
	var progress []string
	client := mcp.NewClient(&mcp.Implementation{Name: "pyro-e2e", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progress = append(progress, r.Params.Message)
			mu.Unlock()
		},
	})
	cmd := pyroCmd(t, s, "mcp", "serve", "--profile", "vm-run", "--insecure-registry", host, "--allow-pull", host+"/e2e/*")
	allowed, err := client.Connect(t.Context(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer allowed.Close()
	params := &mcp.CallToolParams{Name: "vm_run", Arguments: map[string]any{"environment": other, "command": "echo $GREETING"}}
	params.SetProgressToken("pull-1")
	res, err = allowed.CallTool(t.Context(), params)
	if err != nil || res.IsError || !strings.Contains(toolText(res), "from-image") {
		t.Fatalf("allowed pull: %v %s", err, toolText(res))
	}
	mu.Lock()
	got := strings.Join(progress, " | ")
	mu.Unlock()
	if !strings.Contains(got, "not in the cache: pulling it") {
		t.Errorf("pull progress did not reach the MCP client: %q", got)
	}
}
