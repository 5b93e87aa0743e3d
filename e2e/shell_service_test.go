package e2e_test

import (
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The loop through the CLI, each step its own pyro process: a shell
// running python3, read back plain; an HTTP service ready by --ready-http,
// curled from an exec, its log read, stopped.
func TestCLIShellAndService(t *testing.T) {
	s := stateDir(t)
	r := runPyro(t, s, "workspace", "create", "debian:12-build", "--id-only")
	if r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	ws := strings.TrimSpace(r.stdout)
	defer runPyro(t, s, "workspace", "delete", ws)

	r = runPyro(t, s, "workspace", "shell", "open", ws, "--id-only")
	if r.code != 0 {
		t.Fatalf("shell open: %+v", r)
	}
	sh := strings.TrimSpace(r.stdout)
	for _, in := range []string{"python3 -q", "print(sum(range(101)))"} {
		if r := runPyro(t, s, "workspace", "shell", "write", ws, sh, "--input", in); r.code != 0 {
			t.Fatalf("write %q: %+v", in, r)
		}
	}
	var seen strings.Builder
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(seen.String(), "5050") && time.Now().Before(deadline) {
		r = runPyro(t, s, "workspace", "shell", "read", ws, sh, "--plain", "--wait-for-idle-ms", "500")
		if r.code != 0 {
			t.Fatalf("read: %+v", r)
		}
		seen.Reset()
		seen.WriteString(r.stdout)
	}
	if !strings.Contains(seen.String(), ">>> print(sum(range(101)))\n5050") || strings.Contains(seen.String(), "\x1b") {
		t.Fatalf("plain read:\n%s", seen.String())
	}
	if !strings.Contains(r.stderr, "next cursor") {
		t.Errorf("read did not report the cursor: %q", r.stderr)
	}
	r = runPyro(t, s, "workspace", "shell", "read", ws, sh, "--cursor", "99999999")
	if r.code != 125 || !strings.Contains(r.stderr, "invalid_cursor") {
		t.Errorf("future cursor: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "shell", "resize", ws, sh, "--cols", "100", "--rows", "40", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"rows": 40`) {
		t.Errorf("resize: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "shell", "close", ws, sh, "--json"); r.code != 0 || !strings.Contains(r.stdout, `"state": "closed"`) {
		t.Fatalf("close: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "shell", "write", ws, sh, "--input", "1"); r.code != 125 || !strings.Contains(r.stderr, "shell_closed") {
		t.Errorf("write after close: %+v", r)
	}

	r = runPyro(t, s, "workspace", "service", "start", ws, "web", "--ready-http", "http://127.0.0.1:8080/", "--json",
		"--", "python3", "-m", "http.server", "8080")
	if r.code != 0 || !strings.Contains(r.stdout, `"state": "ready"`) {
		t.Fatalf("service start: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "exec", ws, "--", "curl -fsS http://127.0.0.1:8080/ >/dev/null && echo fetched"); r.stdout != "fetched\n" {
		t.Fatalf("curl: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "service", "logs", ws, "web", "--tail-lines", "3"); r.code != 0 || !strings.Contains(r.stdout, "GET / HTTP/1.1") {
		t.Fatalf("logs: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "service", "list", ws); r.code != 0 || !strings.Contains(r.stdout, "web") || !strings.Contains(r.stdout, "ready") {
		t.Fatalf("list: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "service", "stop", ws, "web", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"state": "stopped"`) {
		t.Fatalf("stop: %+v", r)
	}
	r = runPyro(t, s, "workspace", "service", "start", ws, "late", "--ready-file", "never", "--ready-timeout-seconds", "1", "--", "echo waiting; sleep 100")
	if r.code != 125 || !strings.Contains(r.stderr, "service_failed") || !strings.Contains(r.stderr, "waiting") {
		t.Errorf("never ready: %+v", r)
	}
	if r := runPyro(t, s, "workspace", "service", "start", ws, "x", "--ready-tcp", "1", "--ready-file", "f", "--", "true"); r.code != 2 {
		t.Errorf("two readiness flags: %+v", r)
	}
}

// The same loop through a real MCP client (official Go SDK) in workspace-full.
func TestMCPShellAndService(t *testing.T) {
	s := stateDir(t)
	cs := mcpSession(t, s, "workspace-full")
	ctx := t.Context()
	call := func(name string, args map[string]any) map[string]any {
		t.Helper()
		var out map[string]any
		callTool(t, cs, name, args, &out)
		return out
	}
	ws := call("workspace_create", map[string]any{"environment": "debian:12-build"})["workspace_id"].(string)
	defer call("workspace_delete", map[string]any{"workspace_id": ws})

	sh := call("shell_open", map[string]any{"workspace_id": ws})["shell_id"].(string)
	call("shell_write", map[string]any{"workspace_id": ws, "shell_id": sh, "input": "python3 -q"})
	call("shell_write", map[string]any{"workspace_id": ws, "shell_id": sh, "input": "print(2**20)"})
	var text string
	cursor := 0.0
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(text, "1048576") && time.Now().Before(deadline) {
		out := call("shell_read", map[string]any{"workspace_id": ws, "shell_id": sh, "cursor": cursor, "plain": true, "wait_for_idle_ms": 500})
		text += out["output"].(string) + "\n"
		cursor = out["next_cursor"].(float64)
	}
	if !strings.Contains(text, "1048576") {
		t.Fatalf("shell output:\n%s", text)
	}
	if out := call("shell_signal", map[string]any{"workspace_id": ws, "shell_id": sh, "signal": "INT"}); out["state"] != "running" {
		t.Errorf("signal: %v", out)
	}
	if out := call("shell_resize", map[string]any{"workspace_id": ws, "shell_id": sh, "cols": 100, "rows": 40}); out["cols"] != 100.0 || out["rows"] != 40.0 {
		t.Errorf("shell_resize: %v", out)
	}
	call("shell_close", map[string]any{"workspace_id": ws, "shell_id": sh})
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "shell_write", Arguments: map[string]any{"workspace_id": ws, "shell_id": sh, "input": "1"}})
	if err != nil || !res.IsError || !strings.Contains(toolText(res), "closed") {
		t.Errorf("write to closed shell: %v %+v", err, res)
	}

	svc := call("service_start", map[string]any{"workspace_id": ws, "name": "web", "command": "python3 -m http.server 8081",
		"ready_http": "http://127.0.0.1:8081/"})
	if svc["state"] != "ready" {
		t.Fatalf("service_start: %v", svc)
	}
	ex := call("workspace_exec", map[string]any{"workspace_id": ws, "command": "curl -fsS -o /dev/null -w '%{http_code}' http://127.0.0.1:8081/"})
	if ex["stdout"] != "200" {
		t.Fatalf("curl: %v", ex)
	}
	if logs := call("service_logs", map[string]any{"workspace_id": ws, "name": "web", "tail_lines": 2}); !strings.Contains(logs["log"].(string), "GET /") {
		t.Errorf("service_logs: %v", logs)
	}
	if l := call("service_list", map[string]any{"workspace_id": ws}); len(l["services"].([]any)) != 1 {
		t.Errorf("service_list: %v", l)
	}
	if st := call("service_stop", map[string]any{"workspace_id": ws, "name": "web"}); st["state"] != "stopped" {
		t.Errorf("service_stop: %v", st)
	}
	if st := call("service_status", map[string]any{"workspace_id": ws, "name": "web"}); st["state"] != "stopped" {
		t.Errorf("service_status: %v", st)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "service_start", Arguments: map[string]any{"workspace_id": ws, "name": "bad",
		"command": "exit 3", "ready_tcp": 9000}})
	if err != nil || !res.IsError || !strings.Contains(toolText(res), "service_failed") && !strings.Contains(toolText(res), "exited with code 3") {
		t.Errorf("failing service: %v %s", err, toolText(res))
	}
}
