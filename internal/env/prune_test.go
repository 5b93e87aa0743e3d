package env

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStaleTmp(t *testing.T) {
	s := newTestStore(t, Options{})
	ctx := context.Background()
	old := time.Now().Add(-2 * time.Hour)

	// Owner gone: lock file present, not held, past the grace period.
	dead := filepath.Join(s.tmpDir(), "image-dead")
	writeFile(t, filepath.Join(dead, "root", "big"), 1<<16)
	writeFile(t, filepath.Join(dead, ".lock"), 0)
	os.Chtimes(dead, old, old)

	// Owner alive: lock held (old, but a held lock always wins).
	live, err := s.newBuildDir(ctx, "kernel-live")
	if err != nil {
		t.Fatal(err)
	}
	defer live.remove()
	os.Chtimes(live.dir, old, old)

	// Just created, not locked yet: inside the grace period.
	fresh := filepath.Join(s.tmpDir(), "base-fresh")
	writeFile(t, filepath.Join(fresh, ".lock"), 0)

	// No lock at all: removed only when older than an hour.
	nolockOld := filepath.Join(s.tmpDir(), "x-old")
	nolockNew := filepath.Join(s.tmpDir(), "x-new")
	os.MkdirAll(nolockOld, 0o755)
	os.MkdirAll(nolockNew, 0o755)
	os.Chtimes(nolockOld, old, old)

	res, err := s.Prune(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	removed := map[string]bool{}
	for _, it := range res.Removed {
		if it.Kind == "tmp" {
			removed[it.Path] = true
		}
	}
	if !removed[dead] || !removed[nolockOld] || len(removed) != 2 {
		t.Fatalf("removed %v", res.Removed)
	}
	if res.BytesFreed < 1<<16 {
		t.Fatalf("bytes freed %d", res.BytesFreed)
	}
	for _, p := range []string{live.dir, fresh, nolockNew} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed", p)
		}
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Error("dead build dir still there")
	}
}

func TestPruneEnvironmentsKernelsBases(t *testing.T) {
	s := newTestStore(t, Options{})
	ctx := context.Background()
	m1 := fakeInstall(t, s, "debian:12", "12.20250101.aaaaaaaa", agentA, testNow())
	m2 := fakeInstall(t, s, "debian:12-build", "12.20250101.aaaaaaaa", agentA, testNow())
	broken := fakeInstall(t, s, "debian:12-build", "12.20250102.aaaaaaaa", agentA, testNow().Add(time.Hour))
	os.Truncate(broken.Rootfs.Path, 100)
	// An old kernel nothing references, one an in-use env references.
	writeFile(t, filepath.Join(s.root, "kernels", "0000000000000000", "vmlinux"), 100)
	writeFile(t, filepath.Join(s.root, "kernels", "1111111111111111", "vmlinux"), 100)
	m2.Kernel.ConfigHash = "1111111111111111"
	writeManifest(s.root, filepath.Join(s.root, "environments", "debian-12-build", m2.Version), m2)
	// Bases: one from the catalog, one from an older recipe.
	e, _ := lookup("debian:12")
	cur, _ := s.basePaths(e)
	writeFile(t, cur, 100)
	stale := filepath.Join(s.root, "bases", "debian-12-000000000000.tar")
	writeFile(t, stale, 100)
	writeFile(t, filepath.Join(s.logsDir(), "kernel-build-x.log"), 10)

	res, err := s.Prune(ctx, func(name, _ string) bool { return name == "debian:12-build" })
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, it := range res.Removed {
		got[it.Kind+" "+it.Name] = true
	}
	want := []string{
		"environment debian:12 12.20250101.aaaaaaaa",       // not in use
		"environment debian:12-build 12.20250102.aaaaaaaa", // in use but damaged
		"kernel 0000000000000000",
		"base debian-12-000000000000.tar",
		"log kernel-build-x.log",
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("not removed: %s (removed %v)", w, res.Removed)
		}
	}
	if len(res.Removed) != len(want) {
		t.Errorf("removed %d items, want %d: %v", len(res.Removed), len(want), res.Removed)
	}
	if _, err := os.Stat(filepath.Dir(m1.Rootfs.Path)); !os.IsNotExist(err) {
		t.Error("debian:12 still installed")
	}
	if _, err := os.Stat(filepath.Join(s.root, "environments", "debian-12")); !os.IsNotExist(err) {
		t.Error("empty env dir left")
	}
	if _, err := s.Get(ctx, "debian:12-build"); err != nil {
		t.Errorf("in-use env pruned: %v", err)
	}
	for _, keep := range []string{m1.Kernel.Path, filepath.Join(s.root, "kernels", "1111111111111111"), cur} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("%s removed", keep)
		}
	}
}

func TestPruneSkipsLockedEnvironment(t *testing.T) {
	s := newTestStore(t, Options{})
	ctx := context.Background()
	fakeInstall(t, s, "debian:12", "12.20250101.aaaaaaaa", agentA, testNow())
	e, _ := lookup("debian:12")
	unlock, err := s.lockEnv(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	res, err := s.Prune(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range res.Removed {
		if it.Kind == "environment" {
			t.Fatalf("removed %v while a pull holds the lock", it)
		}
	}
}
