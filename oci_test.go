package pyro_test

import (
	"archive/tar"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/testutil"
)

// flattenTestImage is a busybox-only image whose later layers delete a
// file (whiteout), replace a directory (opaque), add a hard link and a
// symlink, and whose config sets PATH and a variable.
func flattenTestImage(t *testing.T, host string) string {
	t.Helper()
	reg := func(name, body string, mode int64) testutil.TarEntry {
		return testutil.TarEntry{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}, Body: body}
	}
	dir := func(name string) testutil.TarEntry {
		return testutil.TarEntry{Header: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
	}
	content := testutil.Tar(t,
		dir("data/"), reg("data/keep", "keep", 0o644), reg("data/gone", "gone", 0o644), reg("data/target", "t", 0o644),
		dir("data/old/"), reg("data/old/a", "a", 0o644), reg("data/old/b", "b", 0o644),
		dir("opt/"), dir("opt/tools/"), dir("opt/tools/bin/"), reg("opt/tools/bin/hello", "#!/bin/sh\necho hello-from-image\n", 0o755),
		// Like Debian's: `sh -lc` resets PATH, then sources profile.d,
		// where pyro puts the image's PATH back.
		dir("etc/"), dir("etc/profile.d/"),
		reg("etc/profile", "PATH=/bin\nexport PATH\nfor i in /etc/profile.d/*.sh; do . $i; done\n", 0o644))
	changes := testutil.Tar(t,
		dir("data/"), reg("data/.wh.gone", "", 0o644),
		dir("data/old/"), reg("data/old/.wh..wh..opq", "", 0o644), reg("data/old/new", "new", 0o644),
		testutil.TarEntry{Header: tar.Header{Typeflag: tar.TypeLink, Name: "data/hard", Linkname: "data/target"}},
		testutil.TarEntry{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: "data/link", Linkname: "target", Mode: 0o777}})
	img := testutil.Image(t, []string{"PATH=/opt/tools/bin:/bin", "GREETING=hello"}, testutil.BusyboxLayer(t), content, changes)
	ref := host + "/pyro-test/flat:1"
	testutil.Push(t, ref, img)
	return ref
}

const flattenCheck = `cd /data && find . | sort && [ "$(stat -c %i hard)" = "$(stat -c %i target)" ] && echo same-inode; readlink link; hello; echo "G=$GREETING"`

const flattenWant = ".\n./hard\n./keep\n./link\n./old\n./old/new\n./target\nsame-inode\ntarget\nhello-from-image\nG=hello\n"

// One image, pulled on first use by Run, then used by a workspace (exec,
// files, a shell) and prepared (fast-start snapshot).
func TestImageEnv(t *testing.T) {
	testutil.RequiresVM(t)
	host := testutil.Registry(t, "", "")
	ref := flattenTestImage(t, host)
	bin := testutil.Binaries(t)
	state := t.TempDir()
	// A private cache (kernel shared): test images never reach the shared one.
	c, err := pyro.New(pyro.WithStateDir(state), pyro.WithCacheDir(testutil.CacheWithKernel(t)),
		pyro.WithAgentPath(bin+"/pyro-agent"), pyro.WithInsecureRegistries(host))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.AssertNoLeaks(t, state) })

	var mu sync.Mutex
	var stages []string
	ctx := pyro.ContextWithProgress(t.Context(), func(e pyro.ProgressEvent) {
		mu.Lock()
		stages = append(stages, e.Stage+": "+e.Message)
		mu.Unlock()
	})
	res, err := c.Run(ctx, pyro.RunRequest{Environment: ref, Command: flattenCheck, TimeoutSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != flattenWant || res.ExitCode != 0 {
		t.Fatalf("guest sees\n%s\nwant\n%s\nstderr %q exit %d", res.Stdout, flattenWant, res.Stderr, res.ExitCode)
	}
	mu.Lock()
	progress := strings.Join(stages, " | ")
	mu.Unlock()
	if !strings.Contains(progress, "pull: "+ref+" is not in the cache") {
		t.Errorf("no pull progress reached the caller: %s", progress)
	}

	ws, err := c.CreateWorkspace(t.Context(), pyro.CreateWorkspaceRequest{Environment: ref})
	if err != nil {
		t.Fatal(err)
	}
	defer c.DeleteWorkspace(t.Context(), ws.WorkspaceID)
	if _, err := c.WriteWorkspaceFile(t.Context(), pyro.WriteFileRequest{Workspace: ws.WorkspaceID, Path: "notes.txt", Content: []byte("from the host\n")}); err != nil {
		t.Fatal(err)
	}
	out, err := c.ExecWorkspace(t.Context(), pyro.WorkspaceExecRequest{Workspace: ws.WorkspaceID, Command: "pwd; cat notes.txt; hello > made.txt"})
	if err != nil || out.Stdout != "/workspace\nfrom the host\n" {
		t.Fatalf("exec: %v %+v", err, out)
	}
	f, err := c.ReadWorkspaceFile(t.Context(), pyro.ReadFileRequest{Workspace: ws.WorkspaceID, Path: "made.txt"})
	if err != nil || f.Content != "hello-from-image\n" {
		t.Fatalf("read: %v %+v", err, f)
	}
	sh, err := c.OpenShell(t.Context(), pyro.OpenShellRequest{Workspace: ws.WorkspaceID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteShell(t.Context(), pyro.WriteShellRequest{Workspace: ws.WorkspaceID, ShellID: sh.ShellID, Input: "echo shell-$GREETING-$((6*7))"}); err != nil {
		t.Fatal(err)
	}
	var seen string
	var cursor int64
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(seen, "shell-hello-42") && time.Now().Before(deadline); {
		o, err := c.ReadShell(t.Context(), pyro.ReadShellRequest{Workspace: ws.WorkspaceID, ShellID: sh.ShellID, Cursor: cursor, Plain: true, WaitForIdleMs: 300})
		if err != nil {
			t.Fatal(err)
		}
		seen += o.Output
		cursor = o.NextCursor
	}
	if !strings.Contains(seen, "shell-hello-42") {
		t.Fatalf("shell output %q", seen)
	}

	p, err := c.Prepare(t.Context(), pyro.PrepareRequest{Environment: ref})
	if err != nil || !p.SnapshotReady {
		t.Fatalf("prepare: %v %+v", err, p)
	}
	res, err = c.Run(t.Context(), pyro.RunRequest{Environment: ref, Command: "echo $GREETING"})
	if err != nil || res.Stdout != "hello\n" {
		t.Fatalf("run from the snapshot: %v %+v", err, res)
	}
}
