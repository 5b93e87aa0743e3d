package pyro_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/vmm/backends"
	"github.com/pyrovm/pyro/internal/workspace"
)

// The disk tools on a real stopped workspace: hostile names, errors, the
// running refusal, an export that is a valid ext4 image, the disk left
// untouched and nothing left in the workspace dir.
func TestWorkspaceDiskTools(t *testing.T) {
	c, state := newWorkspaceClient(t)
	ctx := t.Context()
	w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12", SeedPath: seedRepo(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteWorkspace(ctx, w.WorkspaceID) })
	id := w.WorkspaceID
	r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: id, Command: `printf 'spaced\n' > 'a b.txt' && printf nl > "$(printf 'new\nline')" && mkdir -p 'sub dir' && printf deep > 'sub dir/deep' && ln -s /etc/passwd escape && head -c 3000 /dev/zero > big`})
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("exec: %+v %v", r, err)
	}
	if _, err := c.ListDiskFiles(ctx, pyro.ListFilesRequest{Workspace: id}); pyro.ErrorCode(err) != "workspace_running" {
		t.Fatalf("disk list while running: %v", err)
	}
	if _, err := c.StopWorkspace(ctx, id); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(state, "workspaces", id)
	before, err := os.Stat(wsPaths(dir).Disk())
	if err != nil {
		t.Fatal(err)
	}

	entries, err := c.ListDiskFiles(ctx, pyro.ListFilesRequest{Workspace: id, Path: "/workspace", Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]pyro.FileEntry{}
	for _, e := range entries {
		got[e.Path] = e
	}
	for p, typ := range map[string]string{"a b.txt": "file", "new\nline": "file", "sub dir": "dir", "sub dir/deep": "file", "escape": "symlink", "src/calc.sh": "file", "test.sh": "file", "big": "file"} {
		if got[p].Type != typ {
			t.Errorf("entry %q: %+v, want type %s (all: %v)", p, got[p], typ, entries)
		}
	}
	if got["test.sh"].Mode != "755" || got["a b.txt"].Size != 7 || got["escape"].Size != int64(len("/etc/passwd")) {
		t.Errorf("entries: %+v %+v %+v", got["test.sh"], got["a b.txt"], got["escape"])
	}
	if one, err := c.ListDiskFiles(ctx, pyro.ListFilesRequest{Workspace: id, Path: "sub dir"}); err != nil || len(one) != 1 || one[0].Path != "sub dir/deep" {
		t.Errorf("list sub dir: %+v %v", one, err)
	}

	for p, want := range map[string]string{"a b.txt": "spaced\n", "/workspace/new\nline": "nl", "sub dir/deep": "deep"} {
		f, err := c.ReadDiskFile(ctx, pyro.ReadFileRequest{Workspace: id, Path: p})
		if err != nil || f.Content != want || f.Binary || f.WorkspaceID != id {
			t.Errorf("read %q: %+v %v", p, f, err)
		}
	}
	if f, err := c.ReadDiskFile(ctx, pyro.ReadFileRequest{Workspace: id, Path: "big"}); err != nil || f.Size != 3000 || f.Binary {
		t.Errorf("read big: %v", err)
	}
	for _, tc := range []struct{ path, code string }{
		{"missing.txt", "not_found"},
		{"../etc/passwd", "path_outside_workspace"},
		{"/etc/passwd", "path_outside_workspace"},
		{"escape", "is_symlink"},
		{"sub dir", "not_a_file"},
	} {
		if _, err := c.ReadDiskFile(ctx, pyro.ReadFileRequest{Workspace: id, Path: tc.path}); pyro.ErrorCode(err) != tc.code {
			t.Errorf("read %q: %v, want %s", tc.path, err, tc.code)
		}
	}
	if _, err := c.ReadDiskFile(ctx, pyro.ReadFileRequest{Workspace: id, Path: "big", MaxBytes: 100}); pyro.ErrorCode(err) != "too_large" {
		t.Errorf("read big with max 100: %v", err)
	}
	if _, err := c.ListDiskFiles(ctx, pyro.ListFilesRequest{Workspace: id, Path: "escape"}); pyro.ErrorCode(err) != "is_symlink" {
		t.Errorf("list a symlink: %v", err)
	}

	out := filepath.Join(t.TempDir(), "disk.raw")
	res, err := c.ExportDisk(ctx, pyro.ExportDiskRequest{Workspace: id, Output: out})
	if err != nil || res.HostPath != out || res.Format != "raw" || res.Bytes == 0 {
		t.Fatalf("export: %+v %v", res, err)
	}
	if _, err := c.ExportDisk(ctx, pyro.ExportDiskRequest{Workspace: id, Output: out}); pyro.ErrorCode(err) != "already_exists" {
		t.Errorf("export onto an existing file: %v", err)
	}
	if b, err := exec.Command("e2fsck", "-n", "-f", out).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -n: %v\n%s", err, b)
	}
	if b, err := exec.Command("debugfs", "-R", `cat "/workspace/sub dir/deep"`, out).Output(); err != nil || string(b) != "deep" {
		t.Errorf("debugfs cat on the export: %q %v", b, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".pyro-disk-export-*")); len(left) > 0 {
		t.Errorf("export temp files left: %v", left)
	}

	after, err := os.Stat(wsPaths(dir).Disk())
	if err != nil || !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
		t.Errorf("the disk changed: %v -> %v (%v)", before.ModTime(), after.ModTime(), err)
	}
	names, _ := os.ReadDir(dir)
	for _, n := range names {
		if strings.Contains(n.Name(), "disk-view") || strings.HasSuffix(n.Name(), ".raw") {
			t.Errorf("left in the workspace dir: %s", n.Name())
		}
	}

	// Still a working workspace afterwards.
	if _, err := c.StartWorkspace(ctx, id); err != nil {
		t.Fatal(err)
	}
	if r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: id, Command: "cat 'sub dir/deep'"}); err != nil || r.Stdout != "deep" {
		t.Fatalf("after the disk tools: %+v %v", r, err)
	}
}

// wsPaths names a workspace's files as the default VMM backend lays them out.
func wsPaths(dir string) workspace.Paths {
	return workspace.Paths{Dir: dir, DiskFile: backends.Default().DiskFile()}
}

// layerPattern matches the disk layers forks share, under a state dir.
func layerPattern(state string) string {
	return filepath.Join(state, "workspaces", "layers", "*"+filepath.Ext(backends.Default().DiskFile()))
}
