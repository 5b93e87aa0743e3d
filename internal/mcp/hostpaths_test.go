package mcp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
)

// callText calls a tool and returns whether it failed and its text.
func callText(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) (bool, string) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var text strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text.WriteString(tc.Text)
		}
	}
	return res.IsError, text.String()
}

// A model names host paths only beneath the roots the operator granted:
// every way out (another directory, /etc, symlinks inside the project, "..",
// an alias of the root, a symlink in the exports directory) is refused with
// host_path_denied before anything is read or created. No VM is needed: the
// host path is resolved before the workspace is.
func TestHostPathsOutsideTheRootsAreDenied(t *testing.T) {
	tmp := t.TempDir()
	outside, project, exports := filepath.Join(tmp, "outside"), filepath.Join(tmp, "project"), filepath.Join(tmp, "exports")
	for _, d := range []string{outside, project, exports} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(outside, "canary"), []byte("TOPSECRET"), 0o600)
	os.WriteFile(filepath.Join(project, "a.txt"), []byte("a"), 0o644)
	os.Symlink("/etc", filepath.Join(project, "etc-link"))
	os.Symlink(outside, filepath.Join(exports, "escape"))
	os.Symlink(project, filepath.Join(tmp, "rootlink"))
	c, err := pyro.New(pyro.WithStateDir(t.TempDir()), pyro.WithCacheDir(t.TempDir()), pyro.WithHostRoots(
		pyro.HostRoot{Path: project, Label: "project"}, pyro.HostRoot{Path: exports, Write: true, Label: "exports"}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cs := connect(t, c, Config{Profile: ProfileWorkspaceFull, Version: "test"})

	denied := []struct {
		tool string
		args map[string]any
	}{
		{"workspace_create", map[string]any{"seed_path": outside}},
		{"workspace_create", map[string]any{"seed_path": "/etc"}},
		{"workspace_create", map[string]any{"seed_path": filepath.Join(project, "etc-link")}},
		{"workspace_create", map[string]any{"seed_path": filepath.Join(project, "../outside")}},
		{"workspace_create", map[string]any{"seed_path": filepath.Join(tmp, "rootlink")}},
		{"workspace_create", map[string]any{"seed_path": "etc-link"}},
		{"workspace_sync_push", map[string]any{"workspace_id": "w", "source_path": "/etc"}},
		{"workspace_sync_push", map[string]any{"workspace_id": "w", "source_path": filepath.Join(project, "etc-link/passwd")}},
		{"workspace_sync_push", map[string]any{"workspace_id": "w", "source_path": filepath.Join(exports, "escape/canary")}},
		{"workspace_export", map[string]any{"workspace_id": "w", "path": "a", "output_path": filepath.Join(outside, "x")}},
		{"workspace_export", map[string]any{"workspace_id": "w", "path": "a", "output_path": filepath.Join(exports, "escape/x")}},
		{"workspace_export", map[string]any{"workspace_id": "w", "path": "a", "output_path": filepath.Join(project, "x")}},
		{"workspace_export", map[string]any{"workspace_id": "w", "path": "a", "output_path": filepath.Join(exports, "../outside/x")}},
		{"workspace_disk_export", map[string]any{"workspace_id": "w", "output_path": filepath.Join(outside, "disk.raw")}},
		// Environments that name host files are host paths too.
		{"vm_run", map[string]any{"command": "true", "environment": "oci-layout:" + outside}},
		{"workspace_create", map[string]any{"environment": "docker-archive:" + filepath.Join(outside, "canary")}},
		{"vm_create", map[string]any{"environment": "oci-layout:" + filepath.Join(project, "etc-link")}},
	}
	for _, d := range denied {
		isErr, text := callText(t, cs, d.tool, d.args)
		if !isErr || !strings.HasPrefix(text, pyro.CodeHostPathDenied+":") || !strings.Contains(text, exports) || !strings.Contains(text, "--host-path") {
			t.Errorf("%s %v: %v %q", d.tool, d.args, isErr, text)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("something was created outside: %v", entries)
	}

	// Inside the roots the host path passes; these calls then fail only for
	// the workspace that does not exist.
	for _, d := range []struct {
		tool string
		args map[string]any
	}{
		{"workspace_sync_push", map[string]any{"workspace_id": "w", "source_path": project}},
		{"workspace_sync_push", map[string]any{"workspace_id": "w", "source_path": "a.txt"}},
		{"workspace_export", map[string]any{"workspace_id": "w", "path": "a", "output_path": "out.txt"}},
		{"workspace_export", map[string]any{"workspace_id": "w", "path": "a", "output_path": filepath.Join(exports, "out")}},
	} {
		isErr, text := callText(t, cs, d.tool, d.args)
		if !isErr || !strings.HasPrefix(text, "workspace_not_found:") {
			t.Errorf("%s %v: %v %q", d.tool, d.args, isErr, text)
		}
	}
	if entries, _ := os.ReadDir(exports); len(entries) != 1 {
		t.Errorf("a failed export left %v", entries)
	}
}

// The tool descriptions tell the model which host paths it may use, and
// say so when none is granted; a server given an unconfined client grants
// nothing.
func TestHostPathRulesInDescriptions(t *testing.T) {
	project := t.TempDir()
	c, err := pyro.New(pyro.WithStateDir(t.TempDir()), pyro.WithCacheDir(t.TempDir()),
		pyro.WithHostRoots(pyro.HostRoot{Path: project, Label: "project"}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tools := listToolsOf(t, c, ProfileWorkspaceFull)
	if d := tools["workspace_create"].Description; !strings.Contains(d, project) {
		t.Errorf("workspace_create does not name the project: %s", d)
	}
	if d := tools["workspace_export"].Description; !strings.Contains(d, "grants no host directory to create files in") {
		t.Errorf("workspace_export: %s", d)
	}

	unconfined, err := pyro.New(pyro.WithStateDir(t.TempDir()), pyro.WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	tools = listToolsOf(t, unconfined, ProfileWorkspaceCore)
	for _, name := range []string{"workspace_create", "workspace_sync_push", "workspace_export"} {
		if d := tools[name].Description; !strings.Contains(d, "grants no host directory") {
			t.Errorf("%s: %s", name, d)
		}
	}
	cs := connect(t, unconfined, Config{Profile: ProfileWorkspaceCore, Version: "test"})
	if isErr, text := callText(t, cs, "workspace_sync_push", map[string]any{"workspace_id": "w", "source_path": project}); !isErr || !strings.HasPrefix(text, pyro.CodeHostPathDenied) {
		t.Errorf("unconfined client over MCP: %v %q", isErr, text)
	}
}
