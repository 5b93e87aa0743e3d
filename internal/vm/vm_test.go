package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
	"github.com/pyrovm/pyro/internal/testutil"
	"github.com/pyrovm/pyro/internal/vmm/backends"
)

// A guest whose root disk is not a filesystem never reaches its agent: Boot
// must fail fast with boot_failed and the console's last lines, and leave
// nothing behind.
func TestBootFailedShowsConsoleTail(t *testing.T) {
	testutil.RequiresVM(t)
	cache, err := env.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	store := env.NewStore(env.Options{CacheDir: cache})
	k, ok := store.CachedKernel()
	if !ok {
		if k, err = store.Kernel(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	junk := filepath.Join(t.TempDir(), "junk.img")
	if err := os.WriteFile(junk, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	start := time.Now()
	v, err := Boot(t.Context(), backends.Default(), root, Spec{KernelPath: k.Path, RootfsPath: junk, VCPUs: 1, MemMiB: 256, Accel: "tcg", BootTimeout: time.Minute}, nil)
	if err == nil {
		v.Close()
		t.Fatal("boot of a junk disk succeeded")
	}
	if errdefs.CodeOf(err) != errdefs.CodeBootFailed {
		t.Fatalf("code %q err %v", errdefs.CodeOf(err), err)
	}
	if !strings.Contains(err.Error(), "VFS") || !strings.Contains(err.Error(), "guest console") {
		t.Errorf("error lacks the console tail: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("boot failure took %v to report", d)
	}
	if procs := testutil.QEMUProcessesUnder(root); len(procs) > 0 {
		t.Errorf("QEMU left running: %v", procs)
	}
	if left, _ := os.ReadDir(root); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestReapOrphansRemovesDeadOwnersOnly(t *testing.T) {
	root := t.TempDir()
	live := filepath.Join(root, NewID())
	if err := writeOwner(live, owner{Kind: "run"}); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(root, NewID())
	if err := writeJSONAtomic2(dead, owner{OwnerPid: 1 << 22, OwnerStart: 1}); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(root, "not-a-vm")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	reaped, err := ReapOrphans(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(reaped) != 1 || reaped[0] != filepath.Base(dead) {
		t.Fatalf("reaped %v, want only %s", reaped, filepath.Base(dead))
	}
	for _, d := range []string{live, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed", d)
		}
	}
}

func writeJSONAtomic2(dir string, o owner) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return fsutil.WriteJSONAtomic(filepath.Join(dir, ownerFile), o, 0o600)
}
