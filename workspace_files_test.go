package pyro_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pyrovm/pyro"
)

func TestWorkspaceFilesSyncExport(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12", SeedPath: seedRepo(t)})
	if err != nil {
		t.Fatal(err)
	}
	id := w.WorkspaceID
	defer c.DeleteWorkspace(ctx, id)
	exec := func(cmd string) *pyro.WorkspaceExecResult {
		t.Helper()
		r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: id, Command: cmd})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	// write / read / list
	if _, err := c.WriteWorkspaceFile(ctx, pyro.WriteFileRequest{Workspace: id, Path: "notes/todo.txt", Content: []byte("fix it\n")}); err != nil {
		t.Fatal(err)
	}
	f, err := c.ReadWorkspaceFile(ctx, pyro.ReadFileRequest{Workspace: id, Path: "/workspace/notes/todo.txt"})
	if err != nil || f.Content != "fix it\n" || f.Binary {
		t.Fatalf("read back: %v %+v", err, f)
	}
	entries, err := c.ListWorkspaceFiles(ctx, pyro.ListFilesRequest{Workspace: id, Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range entries {
		paths = append(paths, e.Path)
	}
	for _, want := range []string{"notes", "notes/todo.txt", "src/calc.sh", "test.sh"} {
		if !slices.Contains(paths, want) {
			t.Errorf("recursive list lacks %s: %v", want, paths)
		}
	}

	// sync push of later host changes
	more := t.TempDir()
	os.WriteFile(filepath.Join(more, "extra.txt"), []byte("pushed\n"), 0o644)
	if r, err := c.SyncPush(ctx, pyro.SyncPushRequest{Workspace: id, Source: more, Dest: "incoming"}); err != nil || r.Entries != 1 || r.Path != "/workspace/incoming" {
		t.Fatalf("sync push: %v %+v", err, r)
	}
	if r := exec("cat incoming/extra.txt"); r.Stdout != "pushed\n" {
		t.Fatalf("after push: %+v", r)
	}

	// export a file and a directory
	out := t.TempDir()
	if _, err := c.ExportWorkspace(ctx, pyro.ExportWorkspaceRequest{Workspace: id, Path: "src/calc.sh", Output: filepath.Join(out, "calc.sh")}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "calc.sh")); string(b) != "add() { echo $(($1 - $2)); }\n" {
		t.Fatalf("exported file %q", b)
	}
	if _, err := c.ExportWorkspace(ctx, pyro.ExportWorkspaceRequest{Workspace: id, Path: "notes", Output: filepath.Join(out, "notes")}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "notes", "todo.txt")); string(b) != "fix it\n" {
		t.Fatalf("exported dir file %q", b)
	}

	// A directory holding one file of its own name is still a directory.
	exec("mkdir -p same && echo inner > same/same")
	if _, err := c.ExportWorkspace(ctx, pyro.ExportWorkspaceRequest{Workspace: id, Path: "same", Output: filepath.Join(out, "same")}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "same", "same")); string(b) != "inner\n" {
		t.Fatalf("exported single-file dir: %q", b)
	}

	// everything that leaves /workspace is refused, on every path-taking call
	exec("ln -s /etc escape && head -c 3000000 /dev/zero > big.bin")
	for _, p := range []string{"../etc/passwd", "/etc/passwd", "escape/passwd", "notes/../../etc"} {
		if _, err := c.ReadWorkspaceFile(ctx, pyro.ReadFileRequest{Workspace: id, Path: p}); pyro.ErrorCode(err) != "path_outside_workspace" {
			t.Errorf("read %q: %v", p, err)
		}
		if _, err := c.WriteWorkspaceFile(ctx, pyro.WriteFileRequest{Workspace: id, Path: p, Content: []byte("x")}); pyro.ErrorCode(err) != "path_outside_workspace" {
			t.Errorf("write %q: %v", p, err)
		}
		if _, err := c.ExportWorkspace(ctx, pyro.ExportWorkspaceRequest{Workspace: id, Path: p, Output: filepath.Join(out, "x")}); pyro.ErrorCode(err) != "path_outside_workspace" {
			t.Errorf("export %q: %v", p, err)
		}
	}
	if _, err := c.ListWorkspaceFiles(ctx, pyro.ListFilesRequest{Workspace: id, Path: "escape"}); pyro.ErrorCode(err) != "path_outside_workspace" {
		t.Errorf("list through a symlink out: %v", err)
	}
	if _, err := c.ReadWorkspaceFile(ctx, pyro.ReadFileRequest{Workspace: id, Path: "big.bin", MaxBytes: 1 << 20}); pyro.ErrorCode(err) != "too_large" {
		t.Errorf("read of a 3 MB file with max 1 MiB: %v", err)
	}
	// export targets on the host
	file := filepath.Join(out, "afile")
	os.WriteFile(file, nil, 0o644)
	for _, bad := range []string{filepath.Join(out, "missing", "x"), filepath.Join(file, "x"), filepath.Join(out, "calc.sh")} {
		if _, err := c.ExportWorkspace(ctx, pyro.ExportWorkspaceRequest{Workspace: id, Path: "test.sh", Output: bad}); err == nil {
			t.Errorf("export to %s succeeded", bad)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".pyro-export-*")); len(left) > 0 {
		t.Errorf("export left temp dirs: %v", left)
	}
}
