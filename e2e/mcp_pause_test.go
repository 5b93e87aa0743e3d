package e2e_test

import (
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Pause, resume, fork and the lifecycle settings through the official MCP
// Go client (workspace-full profile).
func TestMCPPauseResumeFork(t *testing.T) {
	s := stateDir(t)
	cs := mcpSession(t, s, "workspace-full")
	type ws struct {
		WorkspaceID      string            `json:"workspace_id"`
		State            string            `json:"state"`
		Labels           map[string]string `json:"labels"`
		TTLAction        string            `json:"ttl_action"`
		IdlePauseSeconds int               `json:"idle_pause_seconds"`
		StateBytes       int64             `json:"state_bytes"`
		Restored         bool              `json:"restored"`
	}
	var w ws
	callTool(t, cs, "workspace_create", map[string]any{"environment": "debian:12", "ttl_seconds": 3600, "ttl_action": "pause"}, &w)
	id := w.WorkspaceID
	t.Cleanup(func() { runPyro(t, s, "workspace", "delete", id) })
	if w.TTLAction != "pause" {
		t.Fatalf("create: %+v", w)
	}
	var ex struct{ Stdout string }
	callTool(t, cs, "workspace_exec", map[string]any{"workspace_id": id, "command": "sleep 1000 >/dev/null 2>&1 & echo $!"}, &ex)
	pid := ex.Stdout
	alive := "cat /proc/" + pid[:len(pid)-1] + "/cmdline | tr '\\0' ' '"

	callTool(t, cs, "workspace_pause", map[string]any{"workspace_id": id}, &w)
	if w.State != "paused" || w.StateBytes <= 0 {
		t.Fatalf("workspace_pause: %+v", w)
	}
	callTool(t, cs, "workspace_status", map[string]any{"workspace_id": id}, &w)
	if w.State != "paused" {
		t.Fatalf("workspace_status of a paused workspace: %+v", w)
	}
	w = ws{}
	callTool(t, cs, "workspace_resume", map[string]any{"workspace_id": id}, &w)
	if w.State != "running" || !w.Restored {
		t.Fatalf("workspace_resume: %+v", w)
	}
	callTool(t, cs, "workspace_exec", map[string]any{"workspace_id": id, "command": alive}, &ex)
	if ex.Stdout != "sleep 1000 " {
		t.Fatalf("the background job after resume: %q", ex.Stdout)
	}

	var fr struct {
		Source ws   `json:"source"`
		Forks  []ws `json:"forks"`
	}
	callTool(t, cs, "workspace_fork", map[string]any{"workspace_id": id, "count": 2}, &fr)
	if fr.Source.State != "running" || len(fr.Forks) != 2 {
		t.Fatalf("workspace_fork: %+v", fr)
	}
	for _, f := range fr.Forks {
		t.Cleanup(func() { runPyro(t, s, "workspace", "delete", f.WorkspaceID) })
		if f.Labels["forked_from"] != id {
			t.Fatalf("fork labels: %+v", f)
		}
		callTool(t, cs, "workspace_exec", map[string]any{"workspace_id": f.WorkspaceID, "command": alive}, &ex)
		if ex.Stdout != "sleep 1000 " {
			t.Fatalf("the background job in fork %s: %q", f.WorkspaceID, ex.Stdout)
		}
		callTool(t, cs, "workspace_delete", map[string]any{"workspace_id": f.WorkspaceID}, &w)
	}

	callTool(t, cs, "workspace_update", map[string]any{"workspace_id": id, "ttl_seconds": 60, "ttl_action": "delete", "idle_pause_seconds": 30}, &w)
	if w.TTLAction != "delete" || w.IdlePauseSeconds != 30 {
		t.Fatalf("workspace_update: %+v", w)
	}
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "workspace_fork", Arguments: map[string]any{"workspace_id": id, "count": 17}})
	if err != nil || !res.IsError {
		t.Fatalf("fork of 17: %v %+v", err, res)
	}
}
