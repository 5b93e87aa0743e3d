package e2e_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// pyro workspace disk list|read|export on a stopped workspace, and the same
// tools over MCP (workspace-full) on that workspace.
func TestCLIAndMCPWorkspaceDisk(t *testing.T) {
	s := stateDir(t)
	id := createSeeded(t, s)
	if r := runPyro(t, s, "workspace", "disk", "list", id); r.code != 125 || !strings.Contains(r.stderr, "workspace_running") {
		t.Fatalf("disk list while running: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "stop", id); r.code != 0 {
		t.Fatalf("stop: %+v", r)
	}
	r := runPyro(t, s, "workspace", "disk", "list", id, "--json")
	var list struct {
		Entries []struct{ Path, Type, Mode string } `json:"entries"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Entries) != 1 || list.Entries[0].Path != "hello.txt" || list.Entries[0].Type != "file" {
		t.Fatalf("disk list: %v %+v", err, r)
	}
	if r := runPyro(t, s, "workspace", "disk", "read", id, "hello.txt", "--content-only"); r.code != 0 || r.stdout != "hello from the host\n" {
		t.Fatalf("disk read: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "disk", "read", id, "nope", "--json"); r.code != 125 || !strings.Contains(r.stdout, `"not_found"`) {
		t.Fatalf("disk read missing: %+v", r)
	}
	out := filepath.Join(t.TempDir(), "ws.ext4")
	if r := runPyro(t, s, "workspace", "disk", "export", id, "--output", out, "--json"); r.code != 0 || !strings.Contains(r.stdout, `"format": "raw"`) {
		t.Fatalf("disk export: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "disk", "export", id, "--output", out); r.code != 125 || !strings.Contains(r.stderr, "already_exists") {
		t.Fatalf("disk export onto an existing file: %+v", r)
	}

	cs := mcpSession(t, s, "workspace-full")
	var entries struct {
		Entries []struct{ Path string } `json:"entries"`
	}
	callTool(t, cs, "workspace_disk_list", map[string]any{"workspace_id": id}, &entries)
	if len(entries.Entries) != 1 || entries.Entries[0].Path != "hello.txt" {
		t.Fatalf("workspace_disk_list: %+v", entries)
	}
	var f struct{ Content string }
	callTool(t, cs, "workspace_disk_read", map[string]any{"workspace_id": id, "path": "/workspace/hello.txt"}, &f)
	if f.Content != "hello from the host\n" {
		t.Fatalf("workspace_disk_read: %+v", f)
	}
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "workspace_disk_read", Arguments: map[string]any{"workspace_id": id, "path": "../etc/passwd"}})
	if err != nil || !res.IsError || !strings.Contains(toolText(res), "outside /workspace") {
		t.Fatalf("workspace_disk_read outside: %v %+v", err, res)
	}
}
