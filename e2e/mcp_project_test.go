package e2e_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// workspace_create without seed_path seeds from the Git-tracked files of the
// server's project; files it cannot read are skipped and listed, not fatal.
func TestMCPProjectPathSeedsTrackedFiles(t *testing.T) {
	s := stateDir(t)
	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.email=t@t", "-c", "user.name=t"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
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
