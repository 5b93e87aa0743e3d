package pyro_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/testutil"
	"github.com/pyrovm/pyro/internal/vmm/backends"
)

// restoreClient is a workspace client over a private cache (its snapshots
// are the test's own) with a debug log.
func restoreClient(t *testing.T) (c *pyro.Client, state, cache string, logs *logBuffer) {
	t.Helper()
	testutil.RequiresVM(t)
	bin := testutil.Binaries(t)
	cache = privateCache(t)
	state = t.TempDir()
	logs = &logBuffer{}
	c, err := pyro.New(pyro.WithStateDir(state), pyro.WithCacheDir(cache), pyro.WithAgentPath(bin+"/pyro-agent"),
		pyro.WithPyroBinary(bin+"/pyro"),
		pyro.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.AssertNoLeaks(t, state) })
	return c, state, cache, logs
}

// supervisorInfo reads a running workspace's supervisor.json.
func supervisorInfo(t *testing.T, state, id string) (info struct {
	BootMs       int64  `json:"boot_ms"`
	Restored     bool   `json:"restored"`
	RestoreError string `json:"restore_error"`
}) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "workspaces", id, "supervisor.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

func wsExec(t *testing.T, c *pyro.Client, id, cmd string) *pyro.WorkspaceExecResult {
	t.Helper()
	r, err := c.ExecWorkspace(t.Context(), pyro.WorkspaceExecRequest{Workspace: id, Command: cmd})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// A workspace is created by restoring the snapshot runs use, into its own
// copy of the snapshot's disk: it is seeded, its clock and RNG are its own,
// two of them share nothing, and it never needs the snapshot again.
func TestWorkspaceRestoresFromSnapshot(t *testing.T) {
	c, state, cache, _ := restoreClient(t)
	ctx := t.Context()
	seed := t.TempDir()
	if err := os.WriteFile(filepath.Join(seed, "hello.txt"), []byte("seeded\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	create := func() *pyro.Workspace {
		t.Helper()
		w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12", SeedPath: seed})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.DeleteWorkspace(context.Background(), w.WorkspaceID) })
		if info := supervisorInfo(t, state, w.WorkspaceID); !info.Restored || info.RestoreError != "" || info.BootMs <= 0 {
			t.Errorf("workspace %s was not restored from the snapshot: %+v", w.WorkspaceID, info)
		}
		if w.BootMs <= 0 || w.State != "running" {
			t.Errorf("workspace %+v", w)
		}
		return w
	}
	w1 := create() // makes the snapshot
	snaps := snapshotDirs(t, cache)
	if len(snaps) != 1 {
		t.Fatalf("snapshots: %v", snaps)
	}
	snapDisk := fileSum(t, filepath.Join(snaps[0], backends.Default().DiskFile()))
	w2 := create()

	before := time.Now()
	r := wsExec(t, c, w1.WorkspaceID, "date +%s.%N; cat hello.txt; head -c 16 /dev/urandom | od -An -tx1; echo one > only1.txt; echo one > /root/only1.txt; sync")
	after := time.Now()
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if r.ExitCode != 0 || len(lines) != 3 {
		t.Fatalf("exec: exit %d stdout %q stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	secs, err := strconv.ParseFloat(lines[0], 64)
	if err != nil {
		t.Fatalf("date: %q", lines[0])
	}
	if g := time.Unix(0, int64(secs*1e9)); g.Before(before.Add(-250*time.Millisecond)) || g.After(after.Add(250*time.Millisecond)) {
		t.Errorf("guest clock %v, host between %v and %v", g, before, after)
	}
	if lines[1] != "seeded" {
		t.Errorf("seed: %q", lines[1])
	}
	r2 := wsExec(t, c, w2.WorkspaceID, "cat hello.txt; head -c 16 /dev/urandom | od -An -tx1; ls only1.txt /root/only1.txt")
	l2 := strings.Split(strings.TrimSpace(r2.Stdout), "\n")
	if len(l2) != 2 || l2[0] != "seeded" {
		t.Fatalf("second workspace: stdout %q stderr %q", r2.Stdout, r2.Stderr)
	}
	if strings.TrimSpace(l2[1]) == strings.TrimSpace(lines[2]) {
		t.Errorf("two workspaces read the same bytes from /dev/urandom: %s", l2[1])
	}
	if r2.ExitCode == 0 || !strings.Contains(r2.Stderr, "'only1.txt': No such file") || !strings.Contains(r2.Stderr, "'/root/only1.txt': No such file") {
		t.Errorf("a write of one workspace is visible in the other: exit %d stderr %q", r2.ExitCode, r2.Stderr)
	}
	if fileSum(t, filepath.Join(snaps[0], backends.Default().DiskFile())) != snapDisk {
		t.Error("a workspace wrote to the snapshot's disk")
	}

	// The snapshot goes (prune, invalidation): the workspaces do not care.
	for _, d := range snapshotDirs(t, cache) {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	if r := wsExec(t, c, w1.WorkspaceID, "cat only1.txt"); r.Stdout != "one\n" {
		t.Errorf("after the snapshot went: %+v", r)
	}
	if _, err := c.StopWorkspace(ctx, w1.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartWorkspace(ctx, w1.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	if info := supervisorInfo(t, state, w1.WorkspaceID); info.Restored || info.BootMs <= 0 {
		t.Errorf("start did not boot cold: %+v", info)
	}
	if r := wsExec(t, c, w1.WorkspaceID, "cat hello.txt only1.txt /root/only1.txt"); r.ExitCode != 0 || r.Stdout != "seeded\none\none\n" {
		t.Errorf("files after stop/start: %+v", r)
	}
}

// A snapshot whose state cannot be restored never fails a create: the
// workspace boots cold from a fresh overlay and the snapshot is removed.
func TestWorkspaceBadSnapshotBootsCold(t *testing.T) {
	c, state, cache, logs := restoreClient(t)
	ctx := t.Context()
	if _, err := c.Run(ctx, pyro.RunRequest{Environment: "debian:12", Command: "true"}); err != nil {
		t.Fatal(err)
	}
	snaps := snapshotDirs(t, cache)
	if len(snaps) != 1 {
		t.Fatalf("snapshots: %v", snaps)
	}
	damageSnapshotState(t, snaps[0])
	logs.take()

	seed := t.TempDir()
	os.WriteFile(filepath.Join(seed, "hello.txt"), []byte("seeded\n"), 0o644)
	w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12", SeedPath: seed})
	if err != nil {
		t.Fatalf("a bad snapshot failed the create: %v", err)
	}
	t.Cleanup(func() { c.DeleteWorkspace(context.Background(), w.WorkspaceID) })
	info := supervisorInfo(t, state, w.WorkspaceID)
	if info.Restored || info.RestoreError == "" || info.BootMs <= 0 {
		t.Errorf("supervisor info after a failed restore: %+v", info)
	}
	if l := logs.take(); !strings.Contains(l, "restoring a snapshot failed") {
		t.Errorf("log does not show the failed restore:\n%s", l)
	}
	if _, err := os.Stat(snaps[0]); !os.IsNotExist(err) {
		t.Errorf("the bad snapshot is still there: %v", err)
	}
	if r := wsExec(t, c, w.WorkspaceID, "cat hello.txt; echo x > x.txt; sync"); r.ExitCode != 0 || r.Stdout != "seeded\n" {
		t.Errorf("exec: %+v", r)
	}
	if _, err := c.StopWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	if r := wsExec(t, c, w.WorkspaceID, "cat hello.txt x.txt"); r.ExitCode != 0 || r.Stdout != "seeded\nx\n" {
		t.Errorf("after stop/start: %+v", r)
	}
	log, _ := os.ReadFile(filepath.Join(state, "workspaces", w.WorkspaceID, "supervisor.log"))
	if !bytes.Contains(log, []byte("restoring the snapshot failed")) {
		t.Errorf("supervisor log:\n%s", log)
	}
}
