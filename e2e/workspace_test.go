package e2e_test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro/internal/testutil"
)

func seedDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "hello.txt"), []byte("hello from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// createSeeded creates a debian:12 workspace seeded from seedDir through the
// CLI and deletes it when the test ends.
func createSeeded(t *testing.T, s string) string {
	t.Helper()
	r := runPyro(t, s, "workspace", "create", "debian:12", "--seed-path", seedDir(t), "--id-only")
	if r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	id := strings.TrimSpace(r.stdout)
	t.Cleanup(func() { runPyro(t, s, "workspace", "delete", id) })
	return id
}

func TestCLIWorkspaceLifecycle(t *testing.T) {
	s := stateDir(t)
	r := runPyro(t, s, "workspace", "create", "debian:12", "--seed-path", seedDir(t), "--name", "cli-ws", "--id-only")
	if r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	id := strings.TrimSpace(r.stdout)
	if len(id) != 12 {
		t.Fatalf("--id-only printed %q", r.stdout)
	}
	defer runPyro(t, s, "workspace", "delete", id)
	// Shell completion offers the workspace by id and by name.
	if r := runPyro(t, s, "__complete", "workspace", "exec", ""); !strings.Contains(r.stdout, id+"\n") || !strings.Contains(r.stdout, "cli-ws\n") {
		t.Errorf("completion of workspace refs: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "exec", "cli-ws", "--", "cat hello.txt; echo more >> hello.txt"); r.code != 0 || r.stdout != "hello from the host\n" {
		t.Fatalf("exec: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "exec", id, "--", "sh", "-c", "exit 9"); r.code != 9 {
		t.Fatalf("exit code: %+v", r)
	}
	r = runPyro(t, s, "workspace", "logs", id, "--json")
	var logs struct {
		Commands []struct {
			Command  string `json:"command"`
			ExitCode int    `json:"exit_code"`
		} `json:"commands"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &logs); err != nil || len(logs.Commands) != 2 || logs.Commands[1].ExitCode != 9 {
		t.Fatalf("logs: %v %s", err, r.stdout)
	}
	if r := runPyro(t, s, "workspace", "stop", id, "--json"); r.code != 0 || !strings.Contains(r.stdout, `"state": "stopped"`) {
		t.Fatalf("stop: %+v", r)
	}
	r = runPyro(t, s, "workspace", "list", "--json")
	if !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, `"stopped"`) {
		t.Fatalf("list: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "exec", id, "--", "true"); r.code != 125 || !strings.Contains(r.stderr, "workspace start") {
		t.Fatalf("exec when stopped: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "start", id); r.code != 0 {
		t.Fatalf("start: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "exec", id, "--", "cat hello.txt"); r.stdout != "hello from the host\nmore\n" {
		t.Fatalf("after restart: %+v", r)
	}
	// patch, diff and export through the CLI
	patch := filepath.Join(t.TempDir(), "fix.diff")
	os.WriteFile(patch, []byte("--- a/hello.txt\n+++ b/hello.txt\n@@ -1,2 +1,2 @@\n-hello from the host\n+hello from the patch\n more\n"), 0o644)
	if r := runPyro(t, s, "workspace", "patch", "apply", id, "--patch-file", patch); r.code != 0 || !strings.Contains(r.stdout, "hello.txt") {
		t.Fatalf("patch apply: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "patch", "apply", id, "--patch-file", patch); r.code != 125 || !strings.Contains(r.stderr, "patch_failed") {
		t.Fatalf("patch applied twice: %+v", r)
	}
	r = runPyro(t, s, "workspace", "diff", id, "--json")
	var d struct {
		Changes []struct {
			Path   string `json:"path"`
			Status string `json:"status"`
			Diff   string `json:"diff"`
		} `json:"changes"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || len(d.Changes) != 1 || d.Changes[0].Status != "modified" ||
		!strings.Contains(d.Changes[0].Diff, "+hello from the patch") || !strings.Contains(d.Changes[0].Diff, "+more") {
		t.Fatalf("diff: %v %s", err, r.stdout)
	}
	out := filepath.Join(t.TempDir(), "hello.out")
	if r := runPyro(t, s, "workspace", "export", id, "hello.txt", "--output", out); r.code != 0 {
		t.Fatalf("export: %+v", r)
	}
	if b, _ := os.ReadFile(out); string(b) != "hello from the patch\nmore\n" {
		t.Fatalf("exported %q", b)
	}
	if r := runPyro(t, s, "workspace", "delete", id); r.code != 0 {
		t.Fatalf("delete: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "status", id); r.code != 125 || !strings.Contains(r.stderr, "workspace_not_found") {
		t.Fatalf("status after delete: %+v", r)
	}
}

func TestMCPWorkspaceCoreLoop(t *testing.T) {
	s := stateDir(t)
	t.Run("stdio", func(t *testing.T) { workspaceCoreLoop(t, mcpSession(t, s, "workspace-core", grantTestTemp(t)...)) })
	t.Run("http", func(t *testing.T) {
		endpoint := startHTTPServer(t, s, "loop-token", append([]string{"--profile", "workspace-core"}, grantTestTemp(t)...)...)
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "pyro-e2e-http", Version: "1"}, nil).Connect(t.Context(),
			&mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: bearer{"loop-token", http.DefaultTransport}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		workspaceCoreLoop(t, cs)
	})
}

// workspaceCoreLoop is the agent loop in workspace-core: create, exec, patch,
// diff, export, delete.
func workspaceCoreLoop(t *testing.T, cs *mcp.ClientSession) {
	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	for _, want := range []string{"vm_run", "workspace_create", "workspace_exec", "workspace_delete", "workspace_logs"} {
		if !slices.Contains(names, want) {
			t.Errorf("workspace-core lacks %s: %v", want, names)
		}
	}
	for _, notWant := range []string{"workspace_stop", "workspace_start"} {
		if slices.Contains(names, notWant) {
			t.Errorf("workspace-core has full-only tool %s", notWant)
		}
	}
	call := func(name string, args map[string]any, out any) {
		t.Helper()
		callTool(t, cs, name, args, out)
	}
	var w struct {
		WorkspaceID string `json:"workspace_id"`
		State       string `json:"state"`
	}
	call("workspace_create", map[string]any{"seed_path": seedDir(t)}, &w)
	if w.State != "running" {
		t.Fatalf("created %+v", w)
	}
	var ex struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	call("workspace_exec", map[string]any{"workspace_id": w.WorkspaceID, "command": "wc -l < hello.txt"}, &ex)
	if ex.ExitCode != 0 || ex.Stdout != "1\n" {
		t.Fatalf("exec %+v", ex)
	}
	var p struct {
		Changed []string `json:"changed"`
	}
	call("workspace_patch_apply", map[string]any{"workspace_id": w.WorkspaceID,
		"patch": "--- a/hello.txt\n+++ b/hello.txt\n@@ -1 +1 @@\n-hello from the host\n+hello from MCP\n"}, &p)
	if len(p.Changed) != 1 || p.Changed[0] != "hello.txt" {
		t.Fatalf("patch %+v", p)
	}
	var d struct {
		Modified int `json:"modified"`
		Changes  []struct {
			Diff string `json:"diff"`
		} `json:"changes"`
	}
	call("workspace_diff", map[string]any{"workspace_id": w.WorkspaceID}, &d)
	if d.Modified != 1 || !strings.Contains(d.Changes[0].Diff, "+hello from MCP") {
		t.Fatalf("diff %+v", d)
	}
	out := filepath.Join(t.TempDir(), "hello.out")
	var ex2 struct {
		Bytes int64 `json:"bytes"`
	}
	call("workspace_export", map[string]any{"workspace_id": w.WorkspaceID, "path": "hello.txt", "output_path": out}, &ex2)
	if b, _ := os.ReadFile(out); string(b) != "hello from MCP\n" {
		t.Fatalf("exported %q", b)
	}
	call("workspace_delete", map[string]any{"workspace_id": w.WorkspaceID}, &w)
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "workspace_status", Arguments: map[string]any{"workspace_id": w.WorkspaceID}})
	if err != nil || !res.IsError || !strings.Contains(toolText(res), "workspace_not_found") {
		t.Fatalf("status after delete: %v %s", err, toolText(res))
	}
}

// Two processes mutating one workspace at once: the lock serializes them and
// the end state is consistent (deleted, nothing left).
func TestCLIConcurrentMutations(t *testing.T) {
	s := stateDir(t)
	r := runPyro(t, s, "workspace", "create", "debian:12", "--id-only")
	if r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	id := strings.TrimSpace(r.stdout)
	results := make(chan result, 3)
	for _, args := range [][]string{{"workspace", "stop", id}, {"workspace", "delete", id}, {"workspace", "update", id, "--label", "k=v"}} {
		go func() { results <- runPyro(t, s, args...) }()
	}
	for i := 0; i < 3; i++ {
		r := <-results
		if r.code != 0 && !strings.Contains(r.stderr, "workspace_not_found") {
			t.Errorf("concurrent mutation: %+v", r)
		}
	}
	if r := runPyro(t, s, "workspace", "list", "--json"); strings.Contains(r.stdout, id) {
		t.Errorf("workspace survived its delete: %s", r.stdout)
	}
	if left, _ := os.ReadDir(filepath.Join(s, "workspaces")); len(left) != 0 {
		t.Errorf("state left: %v", left)
	}
}

// Ctrl-C during `workspace create` leaves nothing: no supervisor, VM or state.
func TestCLIWorkspaceCreateInterrupted(t *testing.T) {
	s := stateDir(t)
	cmd := pyroCmd(t, s, "workspace", "create", "debian:12")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// As soon as the supervisor is being launched: the boot takes a few
	// hundred ms more, so the interrupt lands in the middle of it.
	waitForFile(t, filepath.Join(s, "workspaces", "*", "supervisor-spec.json"))
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Errorf("exit: %v, want 130", err)
	}
	testutil.WaitProcessesGone(s, 15*time.Second) // the leak check at cleanup reports any
	if left, _ := os.ReadDir(filepath.Join(s, "workspaces")); len(left) != 0 {
		t.Errorf("state left after an interrupted create: %v", left)
	}
}

// Snapshots and reset through the CLI: snapshot, change, reset to the
// snapshot, reset to the baseline, with human and JSON output.
func TestCLIWorkspaceSnapshotReset(t *testing.T) {
	s := stateDir(t)
	id := createSeeded(t, s)
	if r := runPyro(t, s, "workspace", "exec", id, "--", "echo snap >> hello.txt"); r.code != 0 {
		t.Fatalf("exec: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "snapshot", "create", id, "s1"); r.code != 0 || !strings.Contains(r.stdout, "created snapshot s1") {
		t.Fatalf("snapshot create: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "snapshot", "create", id, "s1", "--json"); r.code != 125 || !strings.Contains(r.stdout, "snapshot_exists") {
		t.Fatalf("duplicate snapshot: %+v", r)
	}
	r := runPyro(t, s, "workspace", "snapshot", "list", id, "--json")
	var list struct {
		Snapshots []struct {
			WorkspaceID string `json:"workspace_id"`
			Name        string `json:"name"`
			Entries     int    `json:"entries"`
			Bytes       int64  `json:"bytes"`
		} `json:"snapshots"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Snapshots) != 1 || list.Snapshots[0].Name != "s1" ||
		list.Snapshots[0].WorkspaceID != id || list.Snapshots[0].Entries != 1 {
		t.Fatalf("snapshot list: %v %s", err, r.stdout)
	}
	runPyro(t, s, "workspace", "exec", id, "--", "rm hello.txt")
	r = runPyro(t, s, "workspace", "reset", id, "--snapshot", "s1", "--json")
	var w struct {
		State         string `json:"state"`
		ResetFrom     string `json:"reset_from"`
		CommandCount  int    `json:"command_count"`
		SnapshotCount int    `json:"snapshot_count"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &w); err != nil || w.State != "running" || w.ResetFrom != "s1" || w.CommandCount != 0 || w.SnapshotCount != 1 {
		t.Fatalf("reset --snapshot s1: %v %+v", err, r)
	}
	if r := runPyro(t, s, "workspace", "exec", id, "--", "cat hello.txt"); r.stdout != "hello from the host\nsnap\n" {
		t.Fatalf("after reset to s1: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "reset", id); r.code != 0 || !strings.Contains(r.stdout, "reset from baseline") {
		t.Fatalf("reset: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "exec", id, "--", "cat hello.txt"); r.stdout != "hello from the host\n" {
		t.Fatalf("after reset to baseline: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "reset", id, "--snapshot", "nope"); r.code != 125 || !strings.Contains(r.stderr, "snapshot_not_found") {
		t.Fatalf("reset to an unknown snapshot: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "snapshot", "delete", id, "s1"); r.code != 0 || !strings.Contains(r.stdout, "deleted snapshot s1") {
		t.Fatalf("snapshot delete: %+v", r)
	}
}

// snapshot_create and workspace_reset over MCP (workspace-full; reset is
// in workspace-core too).
func TestMCPWorkspaceSnapshotReset(t *testing.T) {
	s := stateDir(t)
	core, err := mcpSession(t, s, "workspace-core").ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var coreNames []string
	for _, tl := range core.Tools {
		coreNames = append(coreNames, tl.Name)
	}
	if !slices.Contains(coreNames, "workspace_reset") || slices.Contains(coreNames, "snapshot_create") {
		t.Fatalf("workspace-core tools: %v", coreNames)
	}
	cs := mcpSession(t, s, "workspace-full", grantTestTemp(t)...)
	call := func(name string, args map[string]any, out any) {
		t.Helper()
		callTool(t, cs, name, args, out)
	}
	var w struct {
		WorkspaceID string `json:"workspace_id"`
		State       string `json:"state"`
		ResetFrom   string `json:"reset_from"`
	}
	call("workspace_create", map[string]any{"seed_path": seedDir(t)}, &w)
	id := w.WorkspaceID
	defer cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "workspace_delete", Arguments: map[string]any{"workspace_id": id}})
	var ex struct {
		Stdout string `json:"stdout"`
	}
	call("workspace_exec", map[string]any{"workspace_id": id, "command": "echo mcp > new.txt"}, &ex)
	var snap struct {
		Name    string `json:"name"`
		Entries int    `json:"entries"`
	}
	call("snapshot_create", map[string]any{"workspace_id": id, "name": "s1"}, &snap)
	if snap.Name != "s1" || snap.Entries != 2 {
		t.Fatalf("snapshot_create: %+v", snap)
	}
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "snapshot_create", Arguments: map[string]any{"workspace_id": id, "name": "baseline"}})
	if err != nil || !res.IsError || !strings.Contains(toolText(res), "reserved") {
		t.Fatalf("snapshot_create baseline: %v %s", err, toolText(res))
	}
	call("workspace_exec", map[string]any{"workspace_id": id, "command": "rm new.txt hello.txt"}, &ex)
	call("workspace_reset", map[string]any{"workspace_id": id, "snapshot": "s1"}, &w)
	if w.State != "running" || w.ResetFrom != "s1" {
		t.Fatalf("workspace_reset: %+v", w)
	}
	call("workspace_exec", map[string]any{"workspace_id": id, "command": "cat hello.txt new.txt"}, &ex)
	if ex.Stdout != "hello from the host\nmcp\n" {
		t.Fatalf("after workspace_reset: %q", ex.Stdout)
	}
	var list struct {
		Snapshots []struct {
			Name string `json:"name"`
		} `json:"snapshots"`
	}
	call("snapshot_list", map[string]any{"workspace_id": id}, &list)
	if len(list.Snapshots) != 1 || list.Snapshots[0].Name != "s1" {
		t.Fatalf("snapshot_list: %+v", list)
	}
}
