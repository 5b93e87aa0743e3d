package e2e_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// workspace_create without seed_path seeds from the Git-tracked files of the
// server's project; files it cannot read are skipped and listed, not fatal.
func TestMCPProjectPathSeedsTrackedFiles(t *testing.T) {
	s := stateDir(t)
	repo := t.TempDir()
	git := gitIn(t, repo)
	git("init", "-q")
	os.WriteFile(filepath.Join(repo, "tracked.txt"), []byte("in git\n"), 0o644)
	os.WriteFile(filepath.Join(repo, "gone.txt"), []byte("soon missing\n"), 0o644)
	git("add", "tracked.txt", "gone.txt")
	git("commit", "-qm", "init")
	os.Remove(filepath.Join(repo, "gone.txt"))
	os.WriteFile(filepath.Join(repo, "untracked.txt"), []byte("not in git\n"), 0o644)

	cmd := pyroCmd(t, s, "mcp", "serve", "--profile", "workspace-core")
	cmd.Dir = repo // the default project is the checkout the server starts in
	client := mcp.NewClient(&mcp.Implementation{Name: "pyro-e2e", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "workspace_create", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("create: %v %s", err, toolText(res))
	}
	var w struct {
		WorkspaceID string `json:"workspace_id"`
		SeedSkipped []struct {
			Path string `json:"path"`
		} `json:"seed_skipped"`
	}
	b, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(b, &w)
	defer cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "workspace_delete", Arguments: map[string]any{"workspace_id": w.WorkspaceID}})
	if len(w.SeedSkipped) != 1 || w.SeedSkipped[0].Path != "gone.txt" {
		t.Errorf("seed_skipped = %+v", w.SeedSkipped)
	}
	res, err = cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "workspace_exec", Arguments: map[string]any{"workspace_id": w.WorkspaceID, "command": "ls"}})
	var ex struct {
		Stdout string `json:"stdout"`
	}
	b, _ = json.Marshal(res.StructuredContent)
	json.Unmarshal(b, &ex)
	if err != nil || ex.Stdout != "tracked.txt\n" {
		t.Fatalf("workspace content: %v %q", err, ex.Stdout)
	}
}

// --repo-url seeds workspaces from a fresh clone of a repository at a ref;
// --no-project-source starts them empty even inside a checkout.
func TestMCPRepoURLAndNoProject(t *testing.T) {
	s := stateDir(t)
	repo := t.TempDir()
	git := gitIn(t, repo)
	git("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(repo, "version.txt"), []byte("main\n"), 0o644)
	git("add", ".")
	git("commit", "-qm", "main")
	git("checkout", "-qb", "release-1")
	os.WriteFile(filepath.Join(repo, "version.txt"), []byte("release-1\n"), 0o644)
	git("commit", "-qam", "release")
	git("checkout", "-q", "main")

	ls := func(cs *mcp.ClientSession) string {
		t.Helper()
		var w struct {
			WorkspaceID string `json:"workspace_id"`
		}
		callTool(t, cs, "workspace_create", map[string]any{}, &w)
		defer cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "workspace_delete", Arguments: map[string]any{"workspace_id": w.WorkspaceID}})
		var ex struct{ Stdout string }
		callTool(t, cs, "workspace_exec", map[string]any{"workspace_id": w.WorkspaceID, "command": "ls -A; cat version.txt 2>/dev/null || true"}, &ex)
		return ex.Stdout
	}
	if got := ls(mcpSession(t, s, "workspace-core", "--repo-url", "file://"+repo, "--repo-ref", "release-1")); got != "version.txt\nrelease-1\n" {
		t.Errorf("seeded from the clone: %q", got)
	}
	cmd := pyroCmd(t, s, "mcp", "serve", "--no-project-source")
	cmd.Dir = repo
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "pyro-e2e", Version: "1"}, nil).Connect(t.Context(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if got := ls(cs); got != "" {
		t.Errorf("--no-project-source seeded %q", got)
	}
	if r := runPyro(t, s, "mcp", "serve", "--repo-url", "file://"+filepath.Join(repo, "nope")); r.code != 125 || !strings.Contains(r.stderr, "cannot clone") {
		t.Errorf("bad repo: %+v", r)
	}
}

// gitIn returns a runner of git commands in dir that fails the test on error.
func gitIn(t *testing.T, dir string) func(args ...string) {
	return func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=t@t", "-c", "user.name=t"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
}
