package pyro_test

import (
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
)

const fixPatch = `--- a/src/calc.sh
+++ b/src/calc.sh
@@ -1 +1 @@
-add() { echo $(($1 - $2)); }
+add() { echo $(($1 + $2)); }
`

const badPatch = `--- a/test.sh
+++ b/test.sh
@@ -1,2 +1,2 @@
 . ./src/calc.sh
-[ "$(add 2 3)" = 5 ] && echo PASS || { echo FAIL; exit 1; }
+[ "$(add 2 3)" = 5 ] && echo OK || { echo FAIL; exit 1; }
--- a/src/calc.sh
+++ b/src/calc.sh
@@ -1 +1 @@
-this line is not in the file
+neither is this one
`

// The full agent loop of the workspaces issue with a real patch and diff.
func TestWorkspacePatchAndDiff(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12", SeedPath: seedRepo(t)})
	if err != nil {
		t.Fatal(err)
	}
	id := w.WorkspaceID
	defer c.DeleteWorkspace(ctx, id)
	run := func(cmd string) *pyro.WorkspaceExecResult {
		t.Helper()
		r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: id, Command: cmd})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if d, err := c.DiffWorkspace(ctx, id); err != nil || len(d.Changes) != 0 {
		t.Fatalf("fresh workspace diff: %v %+v", err, d)
	}
	if r := run("./test.sh"); r.ExitCode != 1 {
		t.Fatalf("test should fail first: %+v", r)
	}
	// A patch whose second file does not apply changes nothing, and says where.
	_, err = c.ApplyPatch(ctx, pyro.ApplyPatchRequest{Workspace: id, Patch: badPatch})
	if pyro.ErrorCode(err) != "patch_failed" || !strings.Contains(err.Error(), "src/calc.sh") {
		t.Fatalf("bad patch: %v", err)
	}
	if r := run("cat test.sh"); strings.Contains(r.Stdout, "echo OK") {
		t.Fatal("a failed patch changed test.sh")
	}
	p, err := c.ApplyPatch(ctx, pyro.ApplyPatchRequest{Workspace: id, Patch: fixPatch})
	if err != nil || len(p.Changed) != 1 || p.Changed[0] != "src/calc.sh" {
		t.Fatalf("fix patch: %v %+v", err, p)
	}
	if r := run("./test.sh"); r.ExitCode != 0 || r.Stdout != "PASS\n" {
		t.Fatalf("test after fix: %+v", r)
	}
	d, err := c.DiffWorkspace(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Changes) != 1 || d.Changes[0].Path != "src/calc.sh" || d.Changes[0].Status != "modified" || d.Modified != 1 ||
		!strings.Contains(d.Changes[0].Diff, "-add() { echo $(($1 - $2)); }") || !strings.Contains(d.Changes[0].Diff, "+add() { echo $(($1 + $2)); }") {
		t.Fatalf("diff after fix: %+v", d)
	}
	// Added, deleted and binary files.
	run("rm test.sh && printf 'new\\n' > added.txt && head -c 100 /dev/urandom > blob.bin")
	d, err = c.DiffWorkspace(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, ch := range d.Changes {
		status[ch.Path] = ch.Status
		if ch.Path == "blob.bin" && (!ch.Binary || ch.Summary == "") {
			t.Errorf("binary change: %+v", ch)
		}
	}
	if status["test.sh"] != "deleted" || status["added.txt"] != "added" || status["blob.bin"] != "added" || status["src/calc.sh"] != "modified" {
		t.Fatalf("statuses %v", status)
	}
	s, err := c.SummarizeWorkspace(ctx, id)
	if err != nil || s.Added != 2 || s.Deleted != 1 || len(s.LastCommands) == 0 {
		t.Fatalf("summary %v %+v", err, s)
	}
	// Deletions are part of the patch's one all-or-nothing step: with a
	// hunk that does not apply nothing is deleted; then the file goes and a
	// directory of the same name comes in its place.
	const delPatch = "--- a/added.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-new\n" +
		"--- /dev/null\n+++ b/added.txt/inner.txt\n@@ -0,0 +1 @@\n+inner\n"
	_, err = c.ApplyPatch(ctx, pyro.ApplyPatchRequest{Workspace: id, Patch: delPatch + "--- a/src/calc.sh\n+++ b/src/calc.sh\n@@ -1 +1 @@\n-not there\n+x\n"})
	if pyro.ErrorCode(err) != "patch_failed" {
		t.Fatalf("deleting patch with a bad hunk: %v", err)
	}
	if r := run("cat added.txt"); r.Stdout != "new\n" {
		t.Fatalf("a failed patch deleted added.txt: %+v", r)
	}
	p, err = c.ApplyPatch(ctx, pyro.ApplyPatchRequest{Workspace: id, Patch: delPatch})
	if err != nil || strings.Join(p.Changed, " ") != "added.txt added.txt/inner.txt" {
		t.Fatalf("deleting patch: %v %+v", err, p)
	}
	if r := run("test -d added.txt && cat added.txt/inner.txt"); r.ExitCode != 0 || r.Stdout != "inner\n" {
		t.Fatalf("after the deleting patch: %+v", r)
	}
	// A patch that only deletes.
	p, err = c.ApplyPatch(ctx, pyro.ApplyPatchRequest{Workspace: id, Patch: "--- a/added.txt/inner.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-inner\n"})
	if err != nil || strings.Join(p.Changed, " ") != "added.txt/inner.txt" {
		t.Fatalf("deletion-only patch: %v %+v", err, p)
	}
	if r := run("ls -A added.txt"); r.ExitCode != 0 || r.Stdout != "" {
		t.Fatalf("after the deletion-only patch: %+v", r)
	}
	// Paths out of /workspace in a patch are refused.
	if _, err := c.ApplyPatch(ctx, pyro.ApplyPatchRequest{Workspace: id, Patch: "--- a/../etc/passwd\n+++ b/../etc/passwd\n@@ -1 +1 @@\n-x\n+y\n"}); pyro.ErrorCode(err) != "path_outside_workspace" {
		t.Errorf("escaping patch: %v", err)
	}
}
