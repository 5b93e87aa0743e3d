package pyro_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/testutil"
)

// Prune never removes an environment a workspace's disk is an overlay over.
func TestPruneKeepsEnvironmentsInUse(t *testing.T) {
	testutil.RequiresVM(t)
	bin := testutil.Binaries(t)
	shared, err := env.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	// A private cache made of hard links to the shared one: prune here
	// cannot touch what other tests use.
	cache := t.TempDir()
	for _, sub := range []string{"kernels", filepath.Join("environments", "debian-12")} {
		os.MkdirAll(filepath.Dir(filepath.Join(cache, sub)), 0o755)
		if out, err := exec.Command("cp", "-al", filepath.Join(shared, sub), filepath.Join(cache, sub)).CombinedOutput(); err != nil {
			t.Fatalf("cp -al: %v %s", err, out)
		}
	}
	state := t.TempDir()
	c, err := pyro.New(pyro.WithStateDir(state), pyro.WithCacheDir(cache), pyro.WithAgentPath(bin+"/pyro-agent"), pyro.WithPyroBinary(bin+"/pyro"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.AssertNoLeaks(t, state) })
	ctx := t.Context()
	w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12", MemMiB: 512})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StopWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PruneEnvironments(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatalf("start after prune: %v", err)
	}
	if r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: "echo ok"}); err != nil || r.Stdout != "ok\n" {
		t.Fatalf("exec after prune: %v %+v", err, r)
	}
	if _, err := c.DeleteWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	res, err := c.PruneEnvironments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	removed := false
	for _, it := range res.Removed {
		removed = removed || (it.Kind == "environment" && strings.HasPrefix(it.Name, "debian:12 "))
	}
	if !removed {
		t.Errorf("unused debian:12 was not pruned: %+v", res.Removed)
	}
}
