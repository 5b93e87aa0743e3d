package e2e_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const redacted = "[REDACTED]"

// noSecrets fails when any text shows one of the values (whole, or without
// surrounding white space).
func noSecrets(t *testing.T, what string, values []string, texts ...string) {
	t.Helper()
	for _, text := range texts {
		for _, v := range values {
			if strings.Contains(text, v) || strings.Contains(text, strings.TrimSpace(v)) {
				t.Errorf("%s shows a secret value:\n%s", what, text)
			}
		}
	}
}

// secretNames decodes the secrets of a workspace JSON object.
func secretNames(t *testing.T, raw []byte) map[string]string {
	t.Helper()
	var w struct {
		Secrets []struct {
			Name   string `json:"name"`
			Source string `json:"source"`
			Value  string `json:"value"`
		} `json:"secrets"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		t.Fatalf("workspace JSON: %v\n%s", err, raw)
	}
	out := map[string]string{}
	for _, s := range w.Secrets {
		if s.Value != "" {
			t.Errorf("secret %s carries a value", s.Name)
		}
		out[s.Name] = s.Source
	}
	return out
}

// Secrets through the CLI: --secret and --secret-file at create, given to
// one exec by --secret-env (also renamed), installed as root-only files,
// redacted in exec output, history, file read, diff, export and service
// logs, kept across stop/start; bad flags and unknown names fail clearly.
func TestCLIWorkspaceSecrets(t *testing.T) {
	s := stateDir(t)
	const token = "tok-CLI-5f3a9e1c77d0"
	const other = "other-CLI-b82d41f0e6" // given by file, with a trailing newline
	values := []string{token, other + "\n"}
	secretFile := filepath.Join(t.TempDir(), "other.secret")
	if err := os.WriteFile(secretFile, []byte(other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) result {
		t.Helper()
		r := runPyro(t, s, args...)
		noSecrets(t, "pyro "+strings.Join(args, " "), values, r.stdout, r.stderr)
		return r
	}

	// Malformed flags are usage errors; nothing boots.
	if r := run("workspace", "create", "debian:12", "--secret", token); r.code != 2 || !strings.Contains(r.stderr, "NAME=VALUE") {
		t.Errorf("--secret without a name: %+v", r)
	}
	if r := run("workspace", "create", "debian:12", "--secret-file", "OTHER"); r.code != 2 || !strings.Contains(r.stderr, "NAME=PATH") {
		t.Errorf("--secret-file without a path: %+v", r)
	}

	r := run("workspace", "create", "debian:12", "--secret", "TOKEN="+token, "--secret-file", "OTHER="+secretFile, "--json")
	if r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	var w struct {
		WorkspaceID string `json:"workspace_id"`
	}
	json.Unmarshal([]byte(r.stdout), &w)
	id := w.WorkspaceID
	defer runPyro(t, s, "workspace", "delete", id)
	if got := secretNames(t, []byte(r.stdout)); got["TOKEN"] != "value" || got["OTHER"] != "file" || len(got) != 2 {
		t.Fatalf("create --json secrets: %v", got)
	}
	if st, err := os.Stat(filepath.Join(s, "workspaces", id, "secrets.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("host secrets file: %v %v; want mode 0600", st, err)
	}

	// Only the exec that names a secret has it in its environment; the
	// files are root-only. (cat shows OTHER with its newline, which the
	// redaction takes as part of the value.)
	r = run("workspace", "exec", id, "--secret-env", "TOKEN", "--",
		`echo $TOKEN; cat /run/pyro-secrets/OTHER; stat -c %a /run/pyro-secrets/OTHER; echo env=$(env | grep -c b82d41f0)`)
	if r.code != 0 || !strings.HasPrefix(r.stdout, redacted+"\n"+redacted) || strings.Count(r.stdout, redacted) != 2 ||
		!strings.HasSuffix(r.stdout, "400\nenv=0\n") {
		t.Fatalf("exec with --secret-env TOKEN: %+v", r)
	}
	r = run("workspace", "exec", id, "--secret-env", "OTHER=RENAMED", "--",
		`printf %s "$RENAMED" | cmp -s - /run/pyro-secrets/OTHER && echo same; echo token=${TOKEN:-unset} other=${OTHER:-unset}`)
	if r.code != 0 || r.stdout != "same\ntoken=unset other=unset\n" {
		t.Fatalf("exec with --secret-env OTHER=RENAMED: %+v", r)
	}
	if r := run("workspace", "exec", id, "--", "echo env=$(env | grep -c -e 5f3a9e1c -e b82d41f0)"); r.stdout != "env=0\n" {
		t.Fatalf("exec without --secret-env sees a secret: %+v", r)
	}
	if r := run("workspace", "exec", id, "--secret-env", "NOPE", "--", "true"); r.code != 125 || !strings.Contains(r.stderr, "secret_not_found") {
		t.Errorf("--secret-env NOPE: %+v", r)
	}
	if r := run("workspace", "exec", id, "--secret-env", "TOKEN=", "--", "true"); r.code != 2 || !strings.Contains(r.stderr, "NAME=ENV_VAR") {
		t.Errorf("--secret-env TOKEN=: %+v", r)
	}

	// The literal value in a command's text: the history hides it, and so
	// do file read, diff and export of the file it wrote.
	if r := run("workspace", "exec", id, "--json", "--", "printf 'token: %s\\n' "+token+" > config.txt"); r.code != 0 {
		t.Fatalf("exec writing the value: %+v", r)
	}
	r = run("workspace", "logs", id)
	if r.code != 0 || !strings.Contains(r.stdout, "printf 'token: %s\\n' "+redacted+" > config.txt") {
		t.Errorf("logs: %+v", r)
	}
	run("workspace", "logs", id, "--json")
	if r := run("workspace", "file", "read", id, "config.txt", "--content-only"); r.code != 0 || r.stdout != "token: "+redacted+"\n" {
		t.Errorf("file read: %+v", r)
	}
	if r := run("workspace", "diff", id); r.code != 0 || !strings.Contains(r.stdout, "+token: "+redacted) {
		t.Errorf("diff: %+v", r)
	}
	run("workspace", "diff", id, "--json")
	out := filepath.Join(t.TempDir(), "config.out")
	if r := run("workspace", "export", id, "config.txt", "--output", out); r.code != 0 {
		t.Fatalf("export: %+v", r)
	}
	if b, _ := os.ReadFile(out); string(b) != "token: "+redacted+"\n" {
		t.Errorf("exported %q", b)
	}

	// A service given a secret: its log hides it.
	r = run("workspace", "service", "start", id, "svc", "--secret-env", "TOKEN=SVC_TOKEN", "--", `echo "svc $SVC_TOKEN"; exec sleep 600`)
	if r.code != 0 {
		t.Fatalf("service start: %+v", r)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		r = run("workspace", "service", "logs", id, "svc")
		if strings.Contains(r.stdout, "svc ") || time.Now().After(deadline) {
			break
		}
	}
	if r.stdout != "svc "+redacted+"\n" {
		t.Errorf("service logs: %+v", r)
	}

	// Status lists names, never values.
	r = run("workspace", "status", id)
	if r.code != 0 || !strings.Contains(r.stdout, "secrets:     OTHER, TOKEN\n") {
		t.Errorf("status: %+v", r)
	}
	r = run("workspace", "status", id, "--json")
	if got := secretNames(t, []byte(r.stdout)); len(got) != 2 || got["TOKEN"] != "value" {
		t.Errorf("status --json secrets: %v", got)
	}

	// Stop and start: the secrets are installed again.
	if r := run("workspace", "stop", id); r.code != 0 {
		t.Fatalf("stop: %+v", r)
	}
	if r := run("workspace", "start", id); r.code != 0 {
		t.Fatalf("start: %+v", r)
	}
	r = run("workspace", "exec", id, "--secret-env", "TOKEN", "--",
		`stat -c '%a %U' /run/pyro-secrets/TOKEN /run/pyro-secrets/OTHER; wc -c < /run/pyro-secrets/OTHER; echo "$TOKEN"`)
	if want := fmt.Sprintf("400 root\n400 root\n%d\n%s\n", len(other)+1, redacted); r.code != 0 || r.stdout != want {
		t.Errorf("after stop/start: %+v, want stdout %q", r, want)
	}
	if r := run("workspace", "delete", id); r.code != 0 {
		t.Fatalf("delete: %+v", r)
	}
}

// Secrets over MCP (workspace-full): values only at workspace_create,
// secret_env on workspace_exec, shell_open and service_start, and every
// answer redacted.
func TestMCPWorkspaceSecrets(t *testing.T) {
	s := stateDir(t)
	cs := mcpSession(t, s, "workspace-full", grantTestTemp(t)...)
	const token = "tok-MCP-91c0d7e2aa4b"
	const other = "other-MCP-3e6f58b1d9"
	values := []string{token, other}
	// raw calls a tool and returns its whole answer, checked for values.
	raw := func(name string, args map[string]any) (*mcp.CallToolResult, string) {
		t.Helper()
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := json.Marshal(res)
		noSecrets(t, name, values, string(b))
		return res, toolText(res)
	}
	call := func(name string, args map[string]any) map[string]any {
		t.Helper()
		res, text := raw(name, args)
		if res.IsError {
			t.Fatalf("%s: %s", name, text)
		}
		b, _ := json.Marshal(res.StructuredContent)
		var out map[string]any
		json.Unmarshal(b, &out)
		return out
	}
	wantError := func(name string, args map[string]any, code string) {
		t.Helper()
		if res, text := raw(name, args); !res.IsError || !strings.Contains(text, code) {
			t.Errorf("%s %v: isError=%v %q; want %s", name, args, res.IsError, text, code)
		}
	}

	// Bad secrets fail before anything boots.
	wantError("workspace_create", map[string]any{"secrets": []any{map[string]any{"name": "T", "value": "abc"}}}, "invalid_argument")
	wantError("workspace_create", map[string]any{"secrets": []any{
		map[string]any{"name": "T", "value": token}, map[string]any{"name": "T", "value": other}}}, "secret_exists")

	w := call("workspace_create", map[string]any{"secrets": []any{
		map[string]any{"name": "TOKEN", "value": token}, map[string]any{"name": "OTHER", "value": other}}})
	id := w["workspace_id"].(string)
	defer cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "workspace_delete", Arguments: map[string]any{"workspace_id": id}})
	wb, _ := json.Marshal(w)
	if got := secretNames(t, wb); got["TOKEN"] != "value" || got["OTHER"] != "value" || len(got) != 2 {
		t.Fatalf("workspace_create secrets: %v", got)
	}

	exec := func(cmd string, env map[string]any) string {
		t.Helper()
		args := map[string]any{"workspace_id": id, "command": cmd}
		if env != nil {
			args["secret_env"] = env
		}
		out := call("workspace_exec", args)
		if out["exit_code"] != 0.0 {
			t.Fatalf("workspace_exec %q: %v", cmd, out)
		}
		return out["stdout"].(string)
	}
	if got := exec(`echo $TOKEN; cat /run/pyro-secrets/OTHER; echo; stat -c %a /run/pyro-secrets/OTHER; echo env=$(env | grep -c 3e6f58b1)`,
		map[string]any{"TOKEN": ""}); got != redacted+"\n"+redacted+"\n400\nenv=0\n" {
		t.Errorf("exec with secret_env TOKEN: %q", got)
	}
	if got := exec(`printf %s "$RENAMED" | cmp -s - /run/pyro-secrets/OTHER && echo same; echo token=${TOKEN:-unset}`,
		map[string]any{"OTHER": "RENAMED"}); got != "same\ntoken=unset\n" {
		t.Errorf("exec with secret_env OTHER=RENAMED: %q", got)
	}
	if got := exec("echo env=$(env | grep -c -e 91c0d7e2 -e 3e6f58b1)", nil); got != "env=0\n" {
		t.Errorf("exec without secret_env sees a secret: %q", got)
	}
	wantError("workspace_exec", map[string]any{"workspace_id": id, "command": "true", "secret_env": map[string]any{"NOPE": ""}}, "secret_not_found")

	// The literal value in a command's text, and in a file.
	exec("printf 'token: %s\\n' "+token+" > config.txt", nil)
	logs := call("workspace_logs", map[string]any{"workspace_id": id})["commands"].([]any)
	if last := logs[len(logs)-1].(map[string]any)["command"]; last != "printf 'token: %s\\n' "+redacted+" > config.txt" {
		t.Errorf("workspace_logs: last command %q", last)
	}
	if f := call("workspace_file_read", map[string]any{"workspace_id": id, "path": "config.txt"}); f["content"] != "token: "+redacted+"\n" {
		t.Errorf("workspace_file_read: %v", f)
	}
	d, _ := json.Marshal(call("workspace_diff", map[string]any{"workspace_id": id}))
	if !strings.Contains(string(d), "+token: "+redacted) {
		t.Errorf("workspace_diff: %s", d)
	}
	out := filepath.Join(t.TempDir(), "config.out")
	call("workspace_export", map[string]any{"workspace_id": id, "path": "config.txt", "output_path": out})
	if b, _ := os.ReadFile(out); string(b) != "token: "+redacted+"\n" {
		t.Errorf("exported %q", b)
	}

	// A shell and a service given a secret.
	sh := call("shell_open", map[string]any{"workspace_id": id, "secret_env": map[string]any{"TOKEN": "SH_TOKEN"}})["shell_id"].(string)
	call("shell_write", map[string]any{"workspace_id": id, "shell_id": sh, "input": `echo "sh=$SH_TOKEN="`})
	var text string
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(text, "sh="+redacted+"=") && time.Now().Before(deadline) {
		text = call("shell_read", map[string]any{"workspace_id": id, "shell_id": sh, "plain": true, "wait_for_idle_ms": 500})["output"].(string)
	}
	if !strings.Contains(text, "sh="+redacted+"=") {
		t.Errorf("shell output:\n%s", text)
	}
	call("shell_close", map[string]any{"workspace_id": id, "shell_id": sh})
	call("service_start", map[string]any{"workspace_id": id, "name": "svc", "command": `echo "svc $TOKEN"; exec sleep 600`,
		"secret_env": map[string]any{"TOKEN": ""}})
	var log string
	for deadline = time.Now().Add(30 * time.Second); !strings.Contains(log, "svc ") && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		log = call("service_logs", map[string]any{"workspace_id": id, "name": "svc"})["log"].(string)
	}
	if log != "svc "+redacted+"\n" {
		t.Errorf("service_logs: %q", log)
	}

	// Status lists names; stop/start installs the secrets again.
	st, _ := json.Marshal(call("workspace_status", map[string]any{"workspace_id": id}))
	if got := slices.Sorted(maps.Keys(secretNames(t, st))); !slices.Equal(got, []string{"OTHER", "TOKEN"}) {
		t.Errorf("workspace_status secrets: %v", got)
	}
	call("workspace_stop", map[string]any{"workspace_id": id})
	call("workspace_start", map[string]any{"workspace_id": id})
	if got := exec(`stat -c %a /run/pyro-secrets/TOKEN /run/pyro-secrets/OTHER; wc -c < /run/pyro-secrets/OTHER; echo $TOKEN`,
		map[string]any{"TOKEN": ""}); got != fmt.Sprintf("400\n400\n%d\n%s\n", len(other), redacted) {
		t.Errorf("after stop/start: %q", got)
	}
	call("workspace_delete", map[string]any{"workspace_id": id})
}
