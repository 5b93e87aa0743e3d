package pyro_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
)

const (
	apiToken = "tok-3f9a7c1e5b2d"
	dbPass   = "hunter2-xyzzy"
)

func sha16(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:16]
}

// noSecret fails when any secret value shows up in s.
func noSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, v := range []string{apiToken, dbPass, "tok-3f9a", "hunter2"} {
		if strings.Contains(s, v) {
			t.Errorf("%s shows secret text %q:\n%s", what, v, s)
		}
	}
}

// Secrets end to end on a real VM: the guest gets the values (files under
// /run/pyro-secrets, variables only where asked), and no value comes back
// through exec, history, file read, diff, export, shells, services or
// errors; stop/start and reset keep them; snapshots keep the real bytes.
func TestWorkspaceSecrets(t *testing.T) {
	c, state := newWorkspaceClient(t)
	ctx := t.Context()
	passFile := filepath.Join(t.TempDir(), "db-pass")
	if err := os.WriteFile(passFile, []byte(dbPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Bad secrets are refused before anything boots.
	for name, bad := range map[string][]pyro.WorkspaceSecret{
		"short value":  {{Name: "A", Value: "abc"}},
		"bad name":     {{Name: "1TOKEN", Value: apiToken}},
		"duplicate":    {{Name: "A", Value: apiToken}, {Name: "A", Value: dbPass}},
		"value+file":   {{Name: "A", Value: apiToken, FilePath: passFile}},
		"missing file": {{Name: "A", FilePath: filepath.Join(t.TempDir(), "nope")}},
	} {
		_, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12", Secrets: bad})
		if code := pyro.ErrorCode(err); code != "invalid_argument" && code != "secret_exists" {
			t.Errorf("%s: %v (code %q)", name, err, code)
		}
		noSecret(t, name+" error", pyro.ErrorCode(err)+" "+errString(err))
	}
	if ws, _ := c.ListWorkspaces(ctx); len(ws) != 0 {
		t.Fatalf("refused creates left workspaces: %+v", ws)
	}

	w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12", Secrets: []pyro.WorkspaceSecret{
		{Name: "API_TOKEN", Value: apiToken}, {Name: "DB_PASS", FilePath: passFile},
	}})
	if err != nil {
		t.Fatal(err)
	}
	id := w.WorkspaceID
	t.Cleanup(func() { c.DeleteWorkspace(context.Background(), id) })
	if len(w.Secrets) != 2 || w.Secrets[0].Name != "API_TOKEN" || w.Secrets[1].Name != "DB_PASS" || w.Secrets[1].Source != "file" {
		t.Fatalf("status secrets: %+v", w.Secrets)
	}
	dir := filepath.Join(state, "workspaces", id)
	if st, err := os.Stat(filepath.Join(dir, "secrets.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secrets file: %v %v", st, err)
	}
	rec, _ := os.ReadFile(filepath.Join(dir, "workspace.json"))
	noSecret(t, "workspace.json", string(rec))

	exec := func(cmd string, env map[string]string) *pyro.WorkspaceExecResult {
		t.Helper()
		r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: id, Command: cmd, SecretEnv: env})
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		noSecret(t, "exec "+cmd, r.Command+r.Stdout+r.Stderr)
		return r
	}
	checkGuest := func(when string) {
		t.Helper()
		// The guest holds the real values: compare digests, never values.
		r := exec(`printf %s "$GH_TOKEN" | sha256sum | cut -c1-16; sha256sum </run/pyro-secrets/DB_PASS | cut -c1-16; `+
			`stat -c '%a %U' /run/pyro-secrets /run/pyro-secrets/API_TOKEN; printenv DB_PASS || echo no-db-env`,
			map[string]string{"API_TOKEN": "GH_TOKEN"})
		want := strings.Join([]string{sha16(apiToken), sha16(dbPass + "\n"), "700 root", "400 root", "no-db-env", ""}, "\n")
		if r.Stdout != want {
			t.Errorf("%s: guest view\n%q\nwant\n%q", when, r.Stdout, want)
		}
	}
	checkGuest("after create")

	// Output, history and the command text are redacted.
	r := exec(`echo "$API_TOKEN"; cat /run/pyro-secrets/DB_PASS; echo `+apiToken+` >&2`, map[string]string{"API_TOKEN": ""})
	if r.Stdout != "[REDACTED]\n[REDACTED]\n" || r.Stderr != "[REDACTED]\n" || !strings.Contains(r.Command, "echo [REDACTED] >&2") {
		t.Errorf("exec: %+v", r)
	}
	// A value cut by the output cap is hidden too.
	r2, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: id, Command: `printf 'xxxx%s' "$API_TOKEN"`,
		SecretEnv: map[string]string{"API_TOKEN": ""}, MaxOutputBytes: 10})
	if err != nil || !r2.StdoutTruncated || r2.Stdout != "xxxx[REDACTED]" {
		t.Errorf("truncated exec: %v %+v", err, r2)
	}
	logs, err := c.WorkspaceLogs(ctx, id)
	if err != nil || len(logs) < 2 {
		t.Fatalf("logs: %v %+v", err, logs)
	}
	for _, e := range logs {
		noSecret(t, "history", e.Command)
	}

	// Files: read, diff and export show [REDACTED]; the guest file is intact.
	exec(`printf 'key=%s\n' "$API_TOKEN" > conf.txt`, map[string]string{"API_TOKEN": ""})
	f, err := c.ReadWorkspaceFile(ctx, pyro.ReadFileRequest{Workspace: id, Path: "conf.txt", MaxBytes: 1 << 20})
	if err != nil || f.Content != "key=[REDACTED]\n" {
		t.Errorf("file read: %v %+v", err, f)
	}
	d, err := c.DiffWorkspace(ctx, id)
	if err != nil || !strings.Contains(d.Patch, "+key=[REDACTED]") {
		t.Errorf("diff: %v %+v", err, d)
	}
	noSecret(t, "diff", d.Patch)
	out := filepath.Join(t.TempDir(), "conf.txt")
	if _, err := c.ExportWorkspace(ctx, pyro.ExportWorkspaceRequest{Workspace: id, Path: "conf.txt", Output: out}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != "key=[REDACTED]\n" {
		t.Errorf("export: %q", b)
	}
	if r := exec(`sha256sum <conf.txt | cut -c1-16`, nil); r.Stdout != sha16("key="+apiToken+"\n")+"\n" {
		t.Errorf("the guest file changed: %q", r.Stdout)
	}

	// Errors: an unknown secret is named, a patch quoting a value is redacted.
	if _, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: id, Command: "true", SecretEnv: map[string]string{"NOPE": ""}}); pyro.ErrorCode(err) != "secret_not_found" {
		t.Errorf("unknown secret: %v", err)
	}
	_, err = c.ApplyPatch(ctx, pyro.ApplyPatchRequest{Workspace: id, Patch: "--- a/conf.txt\n+++ b/conf.txt\n@@ -1 +1 @@\n-key=other-" + apiToken + "\n+key=x\n"})
	if err == nil {
		t.Error("a patch that does not apply applied")
	}
	noSecret(t, "patch error", errString(err))

	// A shell with the secret in its environment, read raw from the start.
	sh, err := c.OpenShell(ctx, pyro.OpenShellRequest{Workspace: id, SecretEnv: map[string]string{"DB_PASS": ""}})
	if err != nil {
		t.Fatal(err)
	}
	s := &shellSession{t: t, c: c, ws: id, id: sh.ShellID}
	s.write(`echo "pass=$DB_PASS"`)
	s.readUntil("pass=[REDACTED]")
	raw, err := c.ReadShell(ctx, pyro.ReadShellRequest{Workspace: id, ShellID: sh.ShellID})
	if err != nil {
		t.Fatal(err)
	}
	noSecret(t, "raw shell output", raw.Output)

	// A service whose log prints the secret.
	svc, err := c.StartService(ctx, pyro.StartServiceRequest{Workspace: id, Name: "echoer",
		Command: `echo "started with $API_TOKEN"; touch ready; exec sleep 1000`, ReadyFile: "ready",
		SecretEnv: map[string]string{"API_TOKEN": ""}})
	if err != nil {
		t.Fatal(err)
	}
	noSecret(t, "service", svc.Command)
	l, err := c.ServiceLogs(ctx, pyro.ServiceLogsRequest{Workspace: id, Name: "echoer"})
	if err != nil || !strings.Contains(l.Log, "started with [REDACTED]") {
		t.Errorf("service logs: %v %+v", err, l)
	}
	noSecret(t, "service logs", l.Log)

	// Snapshots keep real bytes: a reset to one brings back the real file.
	if _, err := c.CreateSnapshot(ctx, pyro.SnapshotRequest{Workspace: id, Name: "with-conf"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ResetWorkspace(ctx, pyro.ResetWorkspaceRequest{Workspace: id, Snapshot: "with-conf"}); err != nil {
		t.Fatal(err)
	}
	if r := exec(`sha256sum <conf.txt | cut -c1-16`, nil); r.Stdout != sha16("key="+apiToken+"\n")+"\n" {
		t.Errorf("after reset the file is %q", r.Stdout)
	}
	checkGuest("after reset")

	// Stop and start keep them.
	if _, err := c.StopWorkspace(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartWorkspace(ctx, id); err != nil {
		t.Fatal(err)
	}
	checkGuest("after stop and start")
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
