package e2e_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro/internal/testutil"
)

// The CLI builds a custom environment and runs in it, and uses a project's
// environment file; the MCP server (official Go client) uses the same file
// from its project and, only with --allow-build, builds environments itself.
func TestCLIAndMCPEnvBuild(t *testing.T) {
	s := stateDir(t)
	// A private cache holding debian:12: test builds never reach the shared one.
	t.Setenv("PYRO_CACHE_DIR", testutil.CacheWithEnvs(t, "debian:12"))

	r := runPyro(t, s, "env", "build", "cli1", "--from", "debian:12", "--run", "echo cli > /etc/cli-marker", "--json")
	var built struct {
		Environment string `json:"environment"`
		Digest      string `json:"digest"`
		Cached      bool   `json:"cached"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &built); err != nil || r.code != 0 || built.Environment != "cli1" || built.Cached {
		t.Fatalf("env build: %v %+v", err, r)
	}
	if r = runPyro(t, s, "run", "cli1", "--", "cat /etc/cli-marker"); r.code != 0 || r.stdout != "cli\n" {
		t.Fatalf("run in the built environment: %+v", r)
	}
	if r = runPyro(t, s, "env", "list"); !strings.Contains(r.stdout, "cli1") || !strings.Contains(r.stdout, "built from debian:12 with 1 steps") {
		t.Errorf("env list:\n%s", r.stdout)
	}
	if r = runPyro(t, s, "env", "inspect", "cli1"); !strings.Contains(r.stdout, "1. echo cli > /etc/cli-marker") || !strings.Contains(r.stdout, built.Digest) {
		t.Errorf("env inspect:\n%s", r.stdout)
	}
	r = runPyro(t, s, "env", "build", "cli2", "--from", "cli1", "--run", "echo nope; exit 3")
	if r.code != 125 || !strings.Contains(r.stderr, "build_step_failed") || !strings.Contains(r.stderr, "exited with 3") || !strings.Contains(r.stderr, "nope") {
		t.Fatalf("failing step: %+v", r)
	}
	if r = runPyro(t, s, "env", "inspect", "cli2"); r.code != 125 || !strings.Contains(r.stderr, "environment_missing") {
		t.Fatalf("a failed build left something: %+v", r)
	}

	// A Git project with an environment file.
	repo := t.TempDir()
	git := gitIn(t, repo)
	git("init", "-q")
	os.MkdirAll(filepath.Join(repo, ".pyro"), 0o755)
	envFile := filepath.Join(repo, ".pyro", "environment.toml")
	os.WriteFile(envFile, []byte("from = \"cli1\"\nsteps = [\"echo project > /etc/project-marker\"]\n"), 0o644)
	os.WriteFile(filepath.Join(repo, "main.txt"), []byte("code\n"), 0o644)
	git("add", ".")
	git("commit", "-qm", "init")

	r = runPyro(t, s, "workspace", "create", "--env-file", envFile, "--json")
	var ws struct {
		WorkspaceID string `json:"workspace_id"`
		Environment string `json:"environment"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ws); err != nil || r.code != 0 || !strings.HasPrefix(ws.Environment, "envfile-") {
		t.Fatalf("workspace create --env-file: %v %+v", err, r)
	}
	r = runPyro(t, s, "workspace", "exec", ws.WorkspaceID, "--", "cat /etc/project-marker /etc/cli-marker")
	runPyro(t, s, "workspace", "delete", ws.WorkspaceID)
	if r.code != 0 || r.stdout != "project\ncli\n" {
		t.Fatalf("workspace exec: %+v", r)
	}

	// MCP: workspace_create without environment uses the project's file.
	cs := mcpSession(t, s, "workspace-core", "--project-path", repo)
	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil || slices.ContainsFunc(tools.Tools, func(tl *mcp.Tool) bool { return tl.Name == "environment_build" }) {
		t.Fatalf("environment_build offered without --allow-build: %v", err)
	}
	var mws struct {
		WorkspaceID string `json:"workspace_id"`
		Environment string `json:"environment"`
	}
	callTool(t, cs, "workspace_create", map[string]any{}, &mws)
	defer cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "workspace_delete", Arguments: map[string]any{"workspace_id": mws.WorkspaceID}})
	if mws.Environment != ws.Environment {
		t.Fatalf("MCP workspace environment %q, want the project file's %q", mws.Environment, ws.Environment)
	}
	var ex struct {
		Stdout string `json:"stdout"`
	}
	callTool(t, cs, "workspace_exec", map[string]any{"workspace_id": mws.WorkspaceID, "command": "cat /etc/project-marker main.txt"}, &ex)
	if ex.Stdout != "project\ncode\n" {
		t.Fatalf("MCP workspace exec: %q", ex.Stdout)
	}

	// --no-network holds for environment files and builds too; nothing boots.
	netRepo := t.TempDir()
	os.MkdirAll(filepath.Join(netRepo, ".pyro"), 0o755)
	os.WriteFile(filepath.Join(netRepo, ".pyro", "environment.toml"), []byte("from = \"debian:12\"\nnetwork = true\nsteps = [\"true\"]\n"), 0o644)
	cn := mcpSession(t, s, "workspace-core", "--no-network", "--allow-build", "--project-path", netRepo)
	for _, call := range []mcp.CallToolParams{
		{Name: "workspace_create", Arguments: map[string]any{}},
		{Name: "environment_build", Arguments: map[string]any{"name": "nonet", "from": "debian:12", "network": true, "steps": []string{"true"}}},
	} {
		res, err := cn.CallTool(t.Context(), &call)
		if err != nil || !res.IsError || !strings.Contains(toolText(res), "network_disabled") {
			t.Errorf("%s under --no-network: %v %s", call.Name, err, toolText(res))
		}
	}

	// With --allow-build a model builds, and uses what it built.
	cb := mcpSession(t, s, "workspace-core", "--allow-build", "--no-project-source")
	var mb struct {
		Environment string `json:"environment"`
		Cached      bool   `json:"cached"`
	}
	callTool(t, cb, "environment_build", map[string]any{"name": "mcp1", "from": "debian:12", "steps": []string{"echo mcp > /etc/mcp-marker"}}, &mb)
	if mb.Environment != "mcp1" || mb.Cached {
		t.Fatalf("environment_build: %+v", mb)
	}
	var run struct {
		Stdout string `json:"stdout"`
	}
	callTool(t, cb, "vm_run", map[string]any{"environment": "mcp1", "command": "cat /etc/mcp-marker"}, &run)
	if run.Stdout != "mcp\n" {
		t.Fatalf("vm_run in the built environment: %q", run.Stdout)
	}
}

// Ctrl-C during a step leaves no VM and nothing built; kill -9 leaves no
// running VM, nothing visible, and the next call reaps the VM's state.
func TestCLIEnvBuildInterrupted(t *testing.T) {
	s := stateDir(t)
	cache := testutil.CacheWithEnvs(t, "debian:12")
	t.Setenv("PYRO_CACHE_DIR", cache)
	start := func() *exec.Cmd {
		cmd := pyroCmd(t, s, "env", "build", "tint", "--from", "debian:12", "--run", "sleep 600")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitForVM(t, s, 3*time.Second)
		return cmd
	}
	gone := func(what string) {
		t.Helper()
		if r := runPyro(t, s, "env", "inspect", "tint"); r.code != 125 || !strings.Contains(r.stderr, "environment_missing") {
			t.Errorf("%s: the interrupted build is visible: %+v", what, r)
		}
		if builds, _ := os.ReadDir(filepath.Join(cache, "builds")); len(builds) > 0 {
			t.Errorf("%s: builds left: %v", what, builds)
		}
	}

	cmd := start()
	_ = cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err == nil || err.(*exec.ExitError).ExitCode() != 130 {
		t.Errorf("SIGINT: %v, want exit 130", err)
	}
	testutil.AssertNoLeaks(t, s)
	gone("SIGINT")
	if tmp, _ := os.ReadDir(filepath.Join(cache, "tmp")); len(tmp) > 0 {
		t.Errorf("SIGINT: build directories left: %v", tmp)
	}

	cmd = start()
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if procs := testutil.WaitProcessesGone(s, 10*time.Second); len(procs) > 0 {
		t.Fatalf("the build's VMM outlived its killed owner: %v", procs)
	}
	gone("kill -9")
	// The next call that boots reaps the dead build's VM state.
	if r := runPyro(t, s, "run", "debian:12", "--", "true"); r.code != 0 {
		t.Fatalf("next run: %+v", r)
	}
}
