package pyro_test

import (
	"testing"
	"time"

	"github.com/pyrovm/pyro"
)

// Prepare on a cache without snapshots makes the default machine's snapshot;
// the next run restores it, and preparing again is cheap.
func TestPrepareMakesTheSnapshot(t *testing.T) {
	cache := privateCache(t)
	c, _ := snapshotClient(t, cache)
	ctx := t.Context()
	r, err := c.Prepare(ctx, pyro.PrepareRequest{Environment: "debian:12"})
	if err != nil {
		t.Fatal(err)
	}
	if !r.SnapshotReady || r.SnapshotID == "" || r.VCPUCount != 1 || r.MemMiB != 1024 || r.Version == "" {
		t.Fatalf("prepare: %+v", r)
	}
	if dirs := snapshotDirs(t, cache); len(dirs) != 1 {
		t.Fatalf("snapshot dirs after prepare: %v", dirs)
	}
	start := time.Now()
	again, err := c.Prepare(ctx, pyro.PrepareRequest{Environment: "debian:12"})
	if err != nil || again.SnapshotID != r.SnapshotID {
		t.Fatalf("second prepare: %v %+v", err, again)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a second prepare took %s", d)
	}
	run, err := c.Run(ctx, pyro.RunRequest{Environment: "debian:12", Command: "true"})
	if err != nil || run.ExitCode != 0 {
		t.Fatalf("run after prepare: %v %+v", err, run)
	}
	if dirs := snapshotDirs(t, cache); len(dirs) != 1 {
		t.Errorf("the run made another snapshot: %v", dirs)
	}
	// A networked machine is another machine: its own snapshot, which a
	// networked run then restores.
	netr, err := c.Prepare(ctx, pyro.PrepareRequest{Environment: "debian:12", Network: true})
	if err != nil || !netr.SnapshotReady || netr.SnapshotID == r.SnapshotID {
		t.Fatalf("prepare with network: %v %+v", err, netr)
	}
	if run, err := c.Run(ctx, pyro.RunRequest{Environment: "debian:12", Command: "true", Network: true}); err != nil || run.ExitCode != 0 {
		t.Fatalf("networked run after prepare: %v %+v", err, run)
	}
	if dirs := snapshotDirs(t, cache); len(dirs) != 2 {
		t.Errorf("snapshot dirs after the networked prepare and run: %v", dirs)
	}
	if _, err := c.Prepare(ctx, pyro.PrepareRequest{Environment: "oci-layout:/nonexistent/nope"}); pyro.ErrorCode(err) != "environment_missing" {
		t.Errorf("unknown environment: %v", err)
	}
	if _, err := c.Prepare(ctx, pyro.PrepareRequest{Environment: "debian:12", MemMiB: 1}); pyro.ErrorCode(err) != "invalid_argument" {
		t.Errorf("bad size: %v", err)
	}
}
