package pyro_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/testutil"
)

// Snapshots and reset through the SDK, on one workspace: snapshot, change,
// reset to the snapshot, reset to the baseline; shells and services end
// with the old VM; snapshots survive stop/start; every refusal is typed.
func TestWorkspaceSnapshotAndReset(t *testing.T) {
	c, state := newWorkspaceClient(t)
	ctx := t.Context()
	w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12", SeedPath: seedRepo(t), Name: "snaps", Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.DeleteWorkspace(ctx, w.WorkspaceID)
	id := w.WorkspaceID
	exec := func(cmd string) *pyro.WorkspaceExecResult {
		t.Helper()
		r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: id, Command: cmd})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	const tree = "find . | sort | xargs -d '\\n' ls -ld --time-style=+ | awk '{print $1, $NF}'; cat src/calc.sh; cat notes.txt 2>/dev/null; true"
	pristine := exec(tree).Stdout

	// s1: one file changed, one added.
	exec("sed -i 's/\\$1 - \\$2/$1 + $2/' src/calc.sh && echo first > notes.txt")
	atS1 := exec(tree).Stdout
	s1, err := c.CreateSnapshot(ctx, pyro.SnapshotRequest{Workspace: "snaps", Name: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if s1.Name != "s1" || s1.WorkspaceID != id || s1.Entries < 4 || s1.Bytes == 0 || s1.CreatedAt.IsZero() {
		t.Fatalf("snapshot %+v", s1)
	}
	if _, err := c.CreateSnapshot(ctx, pyro.SnapshotRequest{Workspace: id, Name: "s2"}); err != nil {
		t.Fatal(err)
	}

	// Refusals.
	for _, tc := range []struct {
		name, code string
	}{{"s1", "snapshot_exists"}, {"baseline", "invalid_argument"}, {"a/b", "invalid_argument"}, {"..", "invalid_argument"}, {"../x", "invalid_argument"}} {
		if _, err := c.CreateSnapshot(ctx, pyro.SnapshotRequest{Workspace: id, Name: tc.name}); pyro.ErrorCode(err) != tc.code {
			t.Errorf("create snapshot %q: %v, want %s", tc.name, err, tc.code)
		}
	}
	if _, err := c.ResetWorkspace(ctx, pyro.ResetWorkspaceRequest{Workspace: id, Snapshot: "nope"}); pyro.ErrorCode(err) != "snapshot_not_found" {
		t.Errorf("reset to an unknown snapshot: %v", err)
	}
	if _, err := c.DeleteSnapshot(ctx, pyro.SnapshotRequest{Workspace: id, Name: "nope"}); pyro.ErrorCode(err) != "snapshot_not_found" {
		t.Errorf("delete an unknown snapshot: %v", err)
	}
	if _, err := c.DeleteSnapshot(ctx, pyro.SnapshotRequest{Workspace: id, Name: "s2"}); err != nil {
		t.Fatal(err)
	}
	if ss, err := c.ListSnapshots(ctx, id); err != nil || len(ss) != 1 || ss[0].Name != "s1" {
		t.Fatalf("list after delete: %v %+v", err, ss)
	}

	// More changes, a shell and a service: all gone after the reset.
	exec("echo second >> notes.txt && rm test.sh && mkdir -p build && echo x > build/out")
	sh, err := c.OpenShell(ctx, pyro.OpenShellRequest{Workspace: id})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartService(ctx, pyro.StartServiceRequest{Workspace: id, Name: "sleeper", Command: "sleep 600"}); err != nil {
		t.Fatal(err)
	}

	r, err := c.ResetWorkspace(ctx, pyro.ResetWorkspaceRequest{Workspace: "snaps", Snapshot: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if r.State != "running" || r.ResetFrom != "s1" || r.WorkspaceID != id || r.Name != "snaps" || r.Labels["k"] != "v" ||
		r.CommandCount != 0 || r.SnapshotCount != 1 {
		t.Fatalf("reset to s1: %+v", r)
	}
	if logs, err := c.WorkspaceLogs(ctx, id); err != nil || len(logs) != 0 {
		t.Fatalf("history after reset: %v %+v", err, logs)
	}
	if got := exec(tree).Stdout; got != atS1 {
		t.Fatalf("after reset to s1:\n%s\nwant:\n%s", got, atS1)
	}
	if _, err := c.ReadShell(ctx, pyro.ReadShellRequest{Workspace: id, ShellID: sh.ShellID}); pyro.ErrorCode(err) != "shell_not_found" {
		t.Errorf("old shell after reset: %v", err)
	}
	if svcs, err := c.ListServices(ctx, id); err != nil || len(svcs) != 0 {
		t.Errorf("services after reset: %v %+v", err, svcs)
	}
	d, err := c.DiffWorkspace(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var changed []string
	for _, ch := range d.Changes {
		changed = append(changed, ch.Status+" "+ch.Path)
	}
	if !slices.Equal(changed, []string{"added notes.txt", "modified src/calc.sh"}) {
		t.Fatalf("diff after reset to s1 (against the baseline): %v", changed)
	}

	// Snapshots survive stop/start; a stopped workspace cannot be snapshotted.
	if _, err := c.StopWorkspace(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSnapshot(ctx, pyro.SnapshotRequest{Workspace: id, Name: "s3"}); pyro.ErrorCode(err) != "workspace_stopped" || !strings.Contains(err.Error(), "workspace start") {
		t.Errorf("snapshot of a stopped workspace: %v", err)
	}
	if _, err := c.StartWorkspace(ctx, id); err != nil {
		t.Fatal(err)
	}
	if ss, err := c.ListSnapshots(ctx, id); err != nil || len(ss) != 1 {
		t.Fatalf("snapshots after stop/start: %v %+v", err, ss)
	}

	// A reset that fails midway (the guest refuses a damaged archive) is
	// rolled back: stopped, files and history as before; start works.
	if _, err := c.CreateSnapshot(ctx, pyro.SnapshotRequest{Workspace: id, Name: "bad"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "workspaces", id, "snapshots", "bad.tar"), []byte(strings.Repeat("not a tar ", 200)), 0o600); err != nil {
		t.Fatal(err)
	}
	exec("echo keep > keep.txt")
	if _, err := c.ResetWorkspace(ctx, pyro.ResetWorkspaceRequest{Workspace: id, Snapshot: "bad"}); pyro.ErrorCode(err) != "bad_archive" || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("reset from a damaged snapshot: %v", err)
	}
	if s, err := c.WorkspaceStatus(ctx, id); err != nil || s.State != "stopped" || s.CommandCount != 2 {
		t.Fatalf("after a failed reset: %v %+v", err, s)
	}
	if procs := testutil.QEMUProcessesUnder(state); len(procs) != 0 {
		t.Fatalf("processes after a failed reset: %v", procs)
	}
	if _, err := c.StartWorkspace(ctx, id); err != nil {
		t.Fatal(err)
	}
	if r := exec("cat keep.txt"); r.Stdout != "keep\n" {
		t.Fatalf("files after a failed reset: %+v", r)
	}
	if _, err := c.DeleteSnapshot(ctx, pyro.SnapshotRequest{Workspace: id, Name: "bad"}); err != nil {
		t.Fatal(err)
	}

	// Reset to the baseline (the default): the pristine seed, no diff.
	r, err = c.ResetWorkspace(ctx, pyro.ResetWorkspaceRequest{Workspace: id})
	if err != nil {
		t.Fatal(err)
	}
	if r.ResetFrom != "baseline" || r.CommandCount != 0 || r.State != "running" {
		t.Fatalf("reset to baseline: %+v", r)
	}
	if got := exec(tree).Stdout; got != pristine {
		t.Fatalf("after reset to baseline:\n%s\nwant:\n%s", got, pristine)
	}
	if d, err := c.DiffWorkspace(ctx, id); err != nil || len(d.Changes) != 0 {
		t.Fatalf("diff after reset to baseline: %v %+v", err, d)
	}
	// One supervisor and its VMM, no leftovers of the resets on the host.
	if procs := testutil.QEMUProcessesUnder(state); len(procs) != 2 {
		t.Errorf("processes after the resets: %v", procs)
	}
	dir := filepath.Join(state, "workspaces", id)
	if _, err := os.Stat(wsPaths(dir).PreResetDisk()); err == nil {
		t.Error("the replaced disk was left after a reset")
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "snapshots"))
	var files []string
	for _, e := range ents {
		files = append(files, e.Name())
	}
	if !slices.Equal(files, []string{"s1.tar"}) {
		t.Errorf("snapshot dir holds %v", files)
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".snapshot-*")); len(tmp) != 0 {
		t.Errorf("temp dirs left: %v", tmp)
	}
}
