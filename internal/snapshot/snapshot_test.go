package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func testKey() Key {
	return Key{Environment: "debian:12", EnvVersion: "12.1", RootfsSHA256: "r", KernelSHA256: "k", AgentSHA256: "a",
		VCPUs: 1, MemMiB: 1024, Accel: "tcg", VMMVersion: "QEMU emulator version 7.2.22", Machine: "m"}
}

// testDisk is the disk file name the tests' backend uses.
const testDisk = "disk.img"

// fixture is a cache dir with a fake image.
func fixture(t *testing.T) (*Store, string) {
	t.Helper()
	cache := t.TempDir()
	img := filepath.Join(cache, "environments", "rootfs.ext4")
	os.MkdirAll(filepath.Dir(img), 0o755)
	if err := os.WriteFile(img, []byte("image"), 0o644); err != nil {
		t.Fatal(err)
	}
	return NewStore(cache, testDisk), img
}

// fakeBuild writes the two files a real build leaves.
func fakeBuild(calls *atomic.Int32) BuildFunc {
	return func(ctx context.Context, dir string) error {
		calls.Add(1)
		if err := os.WriteFile(filepath.Join(dir, testDisk), []byte("disk"), 0o644); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, StateFile), []byte("state bytes"), 0o600)
	}
}

func TestKeyID(t *testing.T) {
	k := testKey()
	if k.ID() != testKey().ID() || len(k.ID()) != 32 {
		t.Fatalf("id %q is not stable", k.ID())
	}
	// The id of a given key never changes by itself (a rename of a Key
	// field's JSON name would re-key every snapshot on every host): these
	// are the ids of FormatVersion 2 (1 gave a33f3de6... and 093c1320...,
	// the ids pyro made before the VMM backend seam).
	kvm := testKey()
	kvm.Host = "h"
	if k.ID() != "8c284dbce07c8d8fcfce83723e0df334" || kvm.ID() != "c765b0b837a520f1d2ff10455c03d95d" {
		t.Errorf("snapshot ids changed: %s %s", k.ID(), kvm.ID())
	}
	seen := map[string]string{k.ID(): "base"}
	for name, mutate := range map[string]func(*Key){
		"env version": func(k *Key) { k.EnvVersion = "12.2" },
		"rootfs":      func(k *Key) { k.RootfsSHA256 = "r2" },
		"kernel":      func(k *Key) { k.KernelSHA256 = "k2" },
		"agent":       func(k *Key) { k.AgentSHA256 = "a2" },
		"vcpus":       func(k *Key) { k.VCPUs = 2 },
		"mem":         func(k *Key) { k.MemMiB = 512 },
		"accel":       func(k *Key) { k.Accel = "kvm" },
		"qemu":        func(k *Key) { k.VMMVersion = "QEMU emulator version 8.0" },
		"host":        func(k *Key) { k.Host = "cpu" },
		"machine":     func(k *Key) { k.Machine = "m2" },
		"warm-up":     func(k *Key) { k.Warmup = WarmupDigest("true; sync") },
	} {
		k := testKey()
		mutate(&k)
		if other, dup := seen[k.ID()]; dup {
			t.Errorf("%s gives the same id as %s", name, other)
		}
		seen[k.ID()] = name
	}
	if WarmupDigest("true") == WarmupDigest("true; sync") || WarmupDigest("true") != WarmupDigest("true") {
		t.Error("the warm-up digest does not tell warm-ups apart")
	}
	bad := testKey()
	bad.AgentSHA256 = ""
	if bad.Validate() == nil {
		t.Error("a key without an agent digest is valid")
	}
}

func TestCreateAndLookup(t *testing.T) {
	s, img := fixture(t)
	k := testKey()
	if _, err := s.Lookup(k, img); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup before create: %v", err)
	}
	var calls atomic.Int32
	snap, err := s.Create(t.Context(), k, img, fakeBuild(&calls))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Dir != filepath.Join(s.Root(), k.ID()) || snap.Meta.StateSize != int64(len("state bytes")) || snap.Meta.RootfsPath != img {
		t.Errorf("snapshot %+v", snap)
	}
	got, err := s.Lookup(k, img)
	if err != nil || got.Meta.Nonce != snap.Meta.Nonce {
		t.Fatalf("lookup: %v %+v", err, got)
	}
	// A second Create finds it and builds nothing.
	if _, err := s.Create(t.Context(), k, img, fakeBuild(&calls)); err != nil || calls.Load() != 1 {
		t.Errorf("second create: err %v, builds %d", err, calls.Load())
	}
	// Nothing but the snapshot is left in the store.
	entries, _ := os.ReadDir(s.Root())
	if len(entries) != 1 {
		t.Errorf("store holds %v", entries)
	}
	// Made for another machine, or over another image: not found.
	other := k
	other.MemMiB = 2048
	if _, err := s.Lookup(other, img); !errors.Is(err, ErrNotFound) {
		t.Errorf("lookup of another key: %v", err)
	}
	if _, err := s.Lookup(k, img+".new"); !errors.Is(err, ErrNotFound) {
		t.Errorf("lookup over another image: %v", err)
	}
}

func TestLookupRejectsDamage(t *testing.T) {
	for name, damage := range map[string]func(snap *Snapshot, img string){
		"image gone":    func(_ *Snapshot, img string) { os.Remove(img) },
		"state gone":    func(s *Snapshot, _ string) { os.Remove(s.StatePath) },
		"state resized": func(s *Snapshot, _ string) { os.WriteFile(s.StatePath, []byte("x"), 0o600) },
		"disk gone":     func(s *Snapshot, _ string) { os.Remove(s.DiskPath) },
		"meta garbage":  func(s *Snapshot, _ string) { os.WriteFile(filepath.Join(s.Dir, MetaFile), []byte("{"), 0o644) },
		"old format": func(s *Snapshot, _ string) {
			b, _ := os.ReadFile(filepath.Join(s.Dir, MetaFile))
			os.WriteFile(filepath.Join(s.Dir, MetaFile), []byte(strings.Replace(string(b), fmt.Sprintf(`"format_version": %d`, FormatVersion), `"format_version": 0`, 1)), 0o644)
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, img := fixture(t)
			var calls atomic.Int32
			snap, err := s.Create(t.Context(), testKey(), img, fakeBuild(&calls))
			if err != nil {
				t.Fatal(err)
			}
			damage(snap, img)
			if _, err := s.Lookup(testKey(), img); !errors.Is(err, ErrNotFound) {
				t.Fatalf("damaged snapshot found: %v", err)
			}
			// Prune removes it (and reports it).
			removed := s.Prune(nil)
			if len(removed) != 1 || removed[0].ID != testKey().ID() {
				t.Errorf("prune removed %+v", removed)
			}
			if _, err := os.Stat(snap.Dir); !os.IsNotExist(err) {
				t.Errorf("still there after prune: %v", err)
			}
		})
	}
}

func TestPruneKeepsValidSnapshots(t *testing.T) {
	s, img := fixture(t)
	var calls atomic.Int32
	snap, err := s.Create(t.Context(), testKey(), img, fakeBuild(&calls))
	if err != nil {
		t.Fatal(err)
	}
	// Leftovers of a creator that died.
	os.MkdirAll(filepath.Join(s.Root(), ".tmp-"+testKey().ID()+"-123"), 0o755)
	removed := s.Prune(nil)
	if len(removed) != 1 || !strings.Contains(removed[0].Path, ".tmp-") {
		t.Errorf("prune removed %+v", removed)
	}
	if _, err := s.Lookup(testKey(), img); err != nil {
		t.Errorf("valid snapshot pruned: %v", err)
	}
	if r := s.Prune(func(Meta) bool { return false }); len(r) != 1 || r[0].Path != snap.Dir {
		t.Errorf("unwanted snapshot not pruned: %+v", r)
	}
}

func TestCreateFailureBacksOff(t *testing.T) {
	s, img := fixture(t)
	boom := errors.New("boom")
	_, err := s.Create(t.Context(), testKey(), img, func(ctx context.Context, dir string) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	var calls atomic.Int32
	if _, err := s.Create(t.Context(), testKey(), img, fakeBuild(&calls)); !errors.Is(err, ErrRecentlyFailed) || calls.Load() != 0 {
		t.Fatalf("create right after a failure: %v, builds %d", err, calls.Load())
	}
	if entries, _ := os.ReadDir(s.Root()); len(entries) != 1 { // the marker only
		t.Errorf("store holds %v", entries)
	}
	// Once the back-off has passed, it tries again.
	old := time.Now().Add(-FailureBackoff - time.Minute)
	os.Chtimes(s.failedPath(testKey().ID()), old, old)
	if _, err := s.Create(t.Context(), testKey(), img, fakeBuild(&calls)); err != nil || calls.Load() != 1 {
		t.Fatalf("create after the back-off: %v, builds %d", err, calls.Load())
	}
	if _, err := os.Stat(s.failedPath(testKey().ID())); !os.IsNotExist(err) {
		t.Errorf("failure marker kept after a success: %v", err)
	}
}

func TestCanceledCreateIsNotAFailure(t *testing.T) {
	s, img := fixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	_, err := s.Create(ctx, testKey(), img, func(ctx context.Context, dir string) error { cancel(); return ctx.Err() })
	if err == nil {
		t.Fatal("canceled create succeeded")
	}
	var calls atomic.Int32
	if _, err := s.Create(t.Context(), testKey(), img, fakeBuild(&calls)); err != nil {
		t.Fatalf("create after a cancel: %v", err)
	}
}

func TestConcurrentCreateBuildsOnce(t *testing.T) {
	s, img := fixture(t)
	var calls atomic.Int32
	release := make(chan struct{})
	build := func(ctx context.Context, dir string) error {
		<-release
		return fakeBuild(&calls)(ctx, dir)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	started := make(chan struct{})
	wg.Go(func() {
		close(started)
		_, err := s.Create(t.Context(), testKey(), img, build)
		errs <- err
	})
	<-started
	// Wait until the first creator holds the lock.
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(s.lockPath(testKey().ID())); err == nil {
			if entries, _ := os.ReadDir(s.Root()); len(entries) > 0 {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := s.Create(t.Context(), testKey(), img, build); !errors.Is(err, ErrBusy) {
		t.Errorf("a second creator got %v, want ErrBusy", err)
	}
	close(release)
	wg.Wait()
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("%d builds", calls.Load())
	}
}

func TestInvalidate(t *testing.T) {
	s, img := fixture(t)
	var calls atomic.Int32
	snap, err := s.Create(t.Context(), testKey(), img, fakeBuild(&calls))
	if err != nil {
		t.Fatal(err)
	}
	// A stale handle (the snapshot was replaced since) removes nothing.
	stale := *snap
	stale.Meta.Nonce = "other"
	if err := s.Invalidate(&stale, errors.New("restore failed")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(testKey(), img); err != nil {
		t.Fatalf("a stale invalidate removed the snapshot: %v", err)
	}
	if err := s.Invalidate(snap, errors.New("restore failed")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(snap.Dir); !os.IsNotExist(err) {
		t.Errorf("invalidated snapshot still there: %v", err)
	}
	// And it is not made again at once.
	if _, err := s.Create(t.Context(), testKey(), img, fakeBuild(&calls)); !errors.Is(err, ErrRecentlyFailed) {
		t.Errorf("create after invalidate: %v", err)
	}
}

// Await waits for the process making a snapshot and returns what it made;
// with nobody making one it answers at once.
func TestAwaitWaitsForTheMaker(t *testing.T) {
	s, img := fixture(t)
	if _, err := s.Await(t.Context(), testKey(), img); !errors.Is(err, ErrNotFound) {
		t.Fatalf("await with no maker and no snapshot: %v", err)
	}
	var calls atomic.Int32
	building, release := make(chan struct{}), make(chan struct{})
	made := make(chan error, 1)
	go func() {
		_, err := s.Create(t.Context(), testKey(), img, func(ctx context.Context, dir string) error {
			close(building)
			<-release
			return fakeBuild(&calls)(ctx, dir)
		})
		made <- err
	}()
	<-building
	go func() { time.Sleep(200 * time.Millisecond); close(release) }()
	snap, err := s.Await(t.Context(), testKey(), img)
	if err != nil || snap == nil {
		t.Fatalf("await while it is made: %v", err)
	}
	if err := <-made; err != nil || calls.Load() != 1 {
		t.Fatalf("maker: %v, %d builds", err, calls.Load())
	}
}
