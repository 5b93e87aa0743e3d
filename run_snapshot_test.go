package pyro_test

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/testutil"
)

// logBuffer collects a client's debug log, safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// take returns what was logged since the last take.
func (b *logBuffer) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

const restoredLine = `msg="vm restored from snapshot"`

// snapshotClient is a client with a private state dir and a debug log. With
// a cache dir, it uses that cache; else the shared one.
func snapshotClient(t *testing.T, cache string) (*pyro.Client, *logBuffer) {
	t.Helper()
	testutil.RequiresVM(t)
	bin := testutil.Binaries(t)
	state := t.TempDir()
	logs := &logBuffer{}
	opts := []pyro.Option{pyro.WithStateDir(state), pyro.WithAgentPath(bin + "/pyro-agent"),
		pyro.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}
	if cache != "" {
		opts = append(opts, pyro.WithCacheDir(cache))
	}
	c, err := pyro.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.AssertNoLeaks(t, state) })
	return c, logs
}

// damageSnapshotState overwrites the head of a snapshot's state: QEMU
// refuses it at once.
func damageSnapshotState(t *testing.T, dir string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "state"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("garbage!garbage!"), 0); err != nil {
		t.Fatal(err)
	}
}

// privateCache is a cache made of hard links to the shared kernels and
// debian:12 images, with no snapshots: what a test does to its snapshots
// cannot touch other tests.
func privateCache(t *testing.T) string {
	t.Helper()
	shared, err := env.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	for _, sub := range []string{"kernels", filepath.Join("environments", "debian-12"), "accel.json"} {
		if _, err := os.Stat(filepath.Join(shared, sub)); err != nil {
			continue
		}
		os.MkdirAll(filepath.Dir(filepath.Join(cache, sub)), 0o755)
		if out, err := exec.Command("cp", "-al", filepath.Join(shared, sub), filepath.Join(cache, sub)).CombinedOutput(); err != nil {
			t.Fatalf("cp -al: %v %s", err, out)
		}
	}
	return cache
}

func snapshotDirs(t *testing.T, cache string) []string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(cache, "snapshots"))
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			dirs = append(dirs, filepath.Join(cache, "snapshots", e.Name()))
		}
	}
	return dirs
}

// One-shot runs start from a snapshot, and what makes that safe holds: the
// clock is the host's, the kernel RNG differs between two restores, and no
// disk write outlives its run.
func TestRunRestoresFromSnapshot(t *testing.T) {
	c, logs := snapshotClient(t, "")
	ctx := t.Context()
	run := func(cmd string) *pyro.RunResult {
		t.Helper()
		res, err := c.Run(ctx, pyro.RunRequest{Environment: "debian:12", Command: cmd})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.take(), restoredLine) {
			t.Errorf("run of %q did not start from a snapshot", cmd)
		}
		return res
	}
	// The first run makes the snapshot if the shared cache has none yet.
	first := run("head -c 16 /dev/urandom | od -An -tx1; echo leaked > /leak.txt; echo w > /workspace/w.txt; sync")
	if first.ExitCode != 0 {
		t.Fatalf("first run: exit %d stderr %q", first.ExitCode, first.Stderr)
	}

	before := time.Now()
	second := run("date +%s.%N; head -c 16 /dev/urandom | od -An -tx1; cat /leak.txt /workspace/w.txt; uname -r; exit 5")
	after := time.Now()
	lines := strings.Split(strings.TrimSpace(second.Stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("stdout %q stderr %q", second.Stdout, second.Stderr)
	}
	secs, err := strconv.ParseFloat(lines[0], 64)
	if err != nil {
		t.Fatalf("date: %q", lines[0])
	}
	guest := time.Unix(0, int64(secs*1e9))
	// The guest's clock is the host's (to a few ms), not the snapshot's.
	if guest.Before(before.Add(-250*time.Millisecond)) || guest.After(after.Add(250*time.Millisecond)) {
		t.Errorf("guest clock %v, host between %v and %v", guest, before, after)
	}
	if strings.TrimSpace(lines[1]) == strings.TrimSpace(strings.Split(first.Stdout, "\n")[0]) {
		t.Errorf("two restores read the same bytes from /dev/urandom: %s", lines[1])
	}
	if !strings.HasPrefix(lines[2], "6.1.") {
		t.Errorf("uname -r = %q", lines[2])
	}
	if second.ExitCode != 5 || !strings.Contains(second.Stderr, "/leak.txt: No such file") || !strings.Contains(second.Stderr, "/workspace/w.txt: No such file") {
		t.Errorf("a write of the first run is visible in the second: exit %d stderr %q", second.ExitCode, second.Stderr)
	}
	if second.BootMs <= 0 || second.DurationMs < second.BootMs {
		t.Errorf("boot_ms %d duration_ms %d", second.BootMs, second.DurationMs)
	}
}

// A snapshot whose state cannot be restored never fails a run: the run boots
// cold, the bad snapshot is removed, and no new one is made right away.
// Prune removes the snapshots of environment images it removes.
func TestRunBadSnapshotBootsCold(t *testing.T) {
	cache := privateCache(t)
	c, logs := snapshotClient(t, cache)
	ctx := t.Context()
	req := pyro.RunRequest{Environment: "debian:12", Command: "echo ok", MemMiB: 512}
	if _, err := c.Run(ctx, req); err != nil {
		t.Fatal(err)
	}
	if l := logs.take(); !strings.Contains(l, restoredLine) {
		t.Fatalf("the first run did not make and restore a snapshot:\n%s", l)
	}
	snaps := snapshotDirs(t, cache)
	if len(snaps) != 1 {
		t.Fatalf("snapshots: %v", snaps)
	}
	// Damage the state: QEMU refuses it at once.
	damageSnapshotState(t, snaps[0])

	res, err := c.Run(ctx, req)
	if err != nil {
		t.Fatalf("a bad snapshot failed the run: %v", err)
	}
	l := logs.take()
	if res.ExitCode != 0 || res.Stdout != "ok\n" {
		t.Errorf("exit %d stdout %q stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}
	if strings.Contains(l, restoredLine) || !strings.Contains(l, "restoring a snapshot failed") {
		t.Errorf("log does not show a failed restore and a cold boot:\n%s", l)
	}
	if _, err := os.Stat(snaps[0]); !os.IsNotExist(err) {
		t.Errorf("the bad snapshot is still there: %v", err)
	}
	// Within the back-off, runs boot cold without trying to make it again.
	if _, err := c.Run(ctx, req); err != nil {
		t.Fatal(err)
	}
	if left := snapshotDirs(t, cache); len(left) != 0 {
		t.Errorf("a snapshot was made again at once: %v", left)
	}

	// Another machine size has its own snapshot; prune removes it with the
	// environment image it was made over.
	if _, err := c.Run(ctx, pyro.RunRequest{Environment: "debian:12", Command: "true", MemMiB: 384}); err != nil {
		t.Fatal(err)
	}
	if snaps := snapshotDirs(t, cache); len(snaps) != 1 {
		t.Fatalf("snapshots: %v", snaps)
	}
	pr, err := c.PruneEnvironments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pruned := false
	for _, it := range pr.Removed {
		pruned = pruned || (it.Kind == "run_snapshot" && strings.HasPrefix(it.Name, "debian:12 "))
	}
	if !pruned {
		t.Errorf("prune did not report the snapshot: %+v", pr.Removed)
	}
	if left := snapshotDirs(t, cache); len(left) != 0 {
		t.Errorf("snapshots left after the environment was pruned: %v", left)
	}
}
