package e2e_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/testutil"
)

// tsClient runs the official TypeScript MCP client (e2e/tsclient, installed
// by `make test` with npm ci) and decodes what it printed.
func tsClient(t *testing.T, state string, args ...string) map[string]json.RawMessage {
	t.Helper()
	dir := filepath.Join(testutil.RepoRoot(), "e2e", "tsclient")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		t.Fatalf("the TypeScript MCP SDK is not installed: run `npm ci --prefix e2e/tsclient` (make test does): %v", err)
	}
	cmd := exec.Command("node", append([]string{"client.mjs"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYRO_STATE_DIR="+state)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node client: %v\n%s", err, out)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("node client output: %v\n%s", err, out)
	}
	return m
}

func TestTypeScriptClientStdioAndHTTP(t *testing.T) {
	s := stateDir(t)
	bin := filepath.Join(testutil.Binaries(t), "pyro")
	check := func(m map[string]json.RawMessage, wantTools []string) {
		t.Helper()
		var tools []string
		json.Unmarshal(m["tools"], &tools)
		for _, w := range wantTools {
			if !slices.Contains(tools, w) {
				t.Errorf("tools %v lack %s", tools, w)
			}
		}
		var r struct {
			ExitCode int    `json:"exit_code"`
			Stdout   string `json:"stdout"`
		}
		if err := json.Unmarshal(m["vm_run"], &r); err != nil || r.ExitCode != 3 || r.Stdout != "from-typescript\n" {
			t.Errorf("vm_run via TypeScript: %v %+v", err, r)
		}
	}
	check(tsClient(t, s, "stdio", bin, "vm-run", "vm_run"), []string{"vm_run", "vm_list_environments"})
	endpoint := startHTTPServer(t, s, "ts-token", "--profile", "workspace-core")
	check(tsClient(t, s, "http", endpoint, "ts-token", "vm_run"), []string{"vm_run", "workspace_create", "workspace_exec"})
}

// A command that outlives the client's request timeout succeeds: the server
// sends progress while it runs, and the client resets its timeout on it.
func TestTypeScriptClientLongCommandSurvivesTimeout(t *testing.T) {
	s := stateDir(t)
	m := tsClient(t, s, "stdio", filepath.Join(testutil.Binaries(t), "pyro"), "vm-run", "long_run")
	var r struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	var progress int
	json.Unmarshal(m["progress"], &progress)
	if err := json.Unmarshal(m["long_run"], &r); err != nil || r.ExitCode != 0 || r.Stdout != "survived\n" || progress < 4 {
		t.Fatalf("long vm_run: %v %+v, %d progress notifications", err, r, progress)
	}
}

func TestTypeScriptClientWorkspaceLoop(t *testing.T) {
	s := stateDir(t)
	seed := t.TempDir()
	os.MkdirAll(filepath.Join(seed, "src"), 0o755)
	os.WriteFile(filepath.Join(seed, "src", "value"), []byte("wrong\n"), 0o644)
	os.WriteFile(filepath.Join(seed, "test.sh"), []byte("#!/bin/sh\ngrep -qx right src/value && echo PASS || { echo FAIL; exit 1; }\n"), 0o755)
	export := filepath.Join(t.TempDir(), "value.out")
	t.Setenv("PYRO_E2E_SEED", seed)
	t.Setenv("PYRO_E2E_EXPORT", export)
	t.Setenv("PYRO_E2E_HOST_PATH", filepath.Dir(seed))
	endpoint := startHTTPServer(t, s, "ts-loop", append([]string{"--profile", "workspace-core"}, grantTestTemp(t)...)...)
	for _, args := range [][]string{
		{"stdio", filepath.Join(testutil.Binaries(t), "pyro"), "workspace-core", "workspace_loop"},
		{"http", endpoint, "ts-loop", "workspace_loop"},
	} {
		os.Remove(export)
		checkTSLoop(t, tsClient(t, s, args...), export)
	}
}

func checkTSLoop(t *testing.T, m map[string]json.RawMessage, export string) {
	t.Helper()
	var first, second struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	json.Unmarshal(m["first"], &first)
	json.Unmarshal(m["second"], &second)
	if first.ExitCode != 1 || first.Stdout != "FAIL\n" || second.ExitCode != 0 || second.Stdout != "PASS\n" {
		t.Fatalf("loop: first %+v second %+v", first, second)
	}
	var diff struct {
		Modified int `json:"modified"`
	}
	json.Unmarshal(m["diff"], &diff)
	if diff.Modified != 1 {
		t.Errorf("diff via TypeScript: %s", m["diff"])
	}
	if b, err := os.ReadFile(export); err != nil || strings.TrimSpace(string(b)) != "right" {
		t.Fatalf("export: %v %q", err, b)
	}
}

// Shells and services through the official TypeScript client (workspace-full).
func TestTypeScriptClientShellAndService(t *testing.T) {
	m := tsClient(t, stateDir(t), "stdio", filepath.Join(testutil.Binaries(t), "pyro"), "workspace-full", "shell_service")
	var text string
	var svc, stopped struct {
		State string `json:"state"`
	}
	var fetch struct {
		Stdout string `json:"stdout"`
	}
	json.Unmarshal(m["shell_text"], &text)
	json.Unmarshal(m["service"], &svc)
	json.Unmarshal(m["fetch"], &fetch)
	json.Unmarshal(m["stopped"], &stopped)
	if !strings.Contains(text, "1337") || strings.Contains(text, "\x1b") {
		t.Errorf("shell text via TypeScript:\n%s", text)
	}
	if svc.State != "ready" || fetch.Stdout != "200" || stopped.State != "stopped" {
		t.Errorf("service via TypeScript: %+v %+v %+v", svc, fetch, stopped)
	}
}

// Background commands through the official TypeScript client: started,
// followed by cursor to the end, waited for, killed; a capped exec's text
// names command_logs, which returns all of its output; text content is a
// summary with the output, not the JSON again.
func TestTypeScriptClientCommands(t *testing.T) {
	m := tsClient(t, stateDir(t), "stdio", filepath.Join(testutil.Binaries(t), "pyro"), "workspace-core", "commands")
	var started, capped struct {
		CommandID       string `json:"command_id"`
		State           string `json:"state"`
		StdoutTruncated bool   `json:"stdout_truncated"`
	}
	var followed struct {
		Stdout string `json:"stdout"`
		Stderr string `json:"stderr"`
		Reads  int    `json:"reads"`
	}
	var waited, status, killed struct {
		State    string `json:"state"`
		ExitCode *int   `json:"exit_code"`
	}
	var startedText, cappedText string
	var full int
	json.Unmarshal(m["started"], &started)
	json.Unmarshal(m["started_text"], &startedText)
	json.Unmarshal(m["followed"], &followed)
	json.Unmarshal(m["waited"], &waited)
	json.Unmarshal(m["status"], &status)
	json.Unmarshal(m["killed"], &killed)
	json.Unmarshal(m["capped"], &capped)
	json.Unmarshal(m["capped_text"], &cappedText)
	json.Unmarshal(m["capped_full_bytes"], &full)
	if started.State != "running" || started.CommandID == "" || !strings.Contains(startedText, started.CommandID) || strings.HasPrefix(startedText, "{") {
		t.Errorf("start: %+v, text %q", started, startedText)
	}
	if followed.Stdout != "step1\nstep2\nstep3\nstep4\nstep5\n" || followed.Stderr != "warn\n" || followed.Reads < 2 {
		t.Errorf("followed: %+v", followed)
	}
	if waited.State != "exited" || waited.ExitCode == nil || *waited.ExitCode != 4 {
		t.Errorf("wait: %+v", waited)
	}
	if status.State != "running" || killed.State != "killed" || killed.ExitCode == nil || *killed.ExitCode != 137 {
		t.Errorf("status %+v, kill %+v", status, killed)
	}
	want := 0
	for i := 1; i <= 5000; i++ {
		want += len(strconv.Itoa(i)) + 1
	}
	if !capped.StdoutTruncated || !strings.Contains(cappedText, "command_logs") || !strings.Contains(cappedText, capped.CommandID) ||
		!strings.Contains(cappedText, "--- stdout (truncated) ---\n1\n2\n") || full != want {
		t.Errorf("capped exec: %+v, %d of %d bytes by cursor, text:\n%s", capped, full, want, cappedText)
	}
}
