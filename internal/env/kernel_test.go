package env

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestKernelConfigHash(t *testing.T) {
	a := kernelConfigHash(kernelFragment, "6.1.192-2")
	if len(a) != 16 || a != kernelConfigHash(kernelFragment, "6.1.192-2") {
		t.Fatalf("hash %q not stable", a)
	}
	if a == kernelConfigHash(kernelFragment, "6.1.193-1") || a == kernelConfigHash(append([]byte("#\n"), kernelFragment...), "6.1.192-2") {
		t.Fatal("hash ignores an input")
	}
	if !strings.Contains(string(kernelFragment), "CONFIG_PVH=y") {
		t.Fatal("fragment not embedded")
	}
}

func TestLostOptions(t *testing.T) {
	frag := []byte("# comment\nCONFIG_A=y\nCONFIG_B=n\nCONFIG_C=8\nCONFIG_D=n\nCONFIG_E=y\n")
	dot := []byte("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=4\nCONFIG_D=y\n")
	got := strings.Join(lostOptions(frag, dot), " ")
	if got != "CONFIG_C=8 CONFIG_D=n CONFIG_E=y" {
		t.Fatalf("lost %q", got)
	}
}

// Two concurrent callers build the kernel once; the second waits and reuses.
func TestKernelBuiltOnceUnderLock(t *testing.T) {
	cache := t.TempDir()
	var builds atomic.Int32
	compile := func(ctx context.Context, dir string) (string, string, error) {
		builds.Add(1)
		time.Sleep(300 * time.Millisecond)
		p := filepath.Join(dir, "vmlinux")
		writeFile(t, p, 4096)
		return p, "6.1.0-test", nil
	}
	var wg sync.WaitGroup
	results := make([]KernelInfo, 2)
	errs := make([]error, 2)
	for i := range 2 {
		// Separate Stores: like two processes (distinct flock descriptions).
		s := newTestStore(t, Options{CacheDir: cache})
		s.compileKernelFn = compile
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.Kernel(context.Background())
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := builds.Load(); n != 1 {
		t.Fatalf("built %d times", n)
	}
	k := results[0]
	if k != results[1] || k.Size != 4096 || k.Release != "6.1.0-test" || len(k.SHA256) != 64 ||
		k.Path != filepath.Join(cache, "kernels", k.ConfigHash, "vmlinux") {
		t.Fatalf("kernels %+v / %+v", results[0], results[1])
	}
	if _, err := os.Stat(filepath.Join(cache, "kernels", k.ConfigHash, "kernel.json")); err != nil {
		t.Fatal(err)
	}
	// The build tree is gone.
	if entries, _ := os.ReadDir(filepath.Join(cache, "tmp")); len(entries) != 0 {
		t.Fatalf("tmp not cleaned: %v", entries)
	}

	// A corrupted kernel is rebuilt by a verifying call.
	data, _ := os.ReadFile(k.Path)
	data[100] ^= 0xff
	os.WriteFile(k.Path, data, 0o644)
	s := newTestStore(t, Options{CacheDir: cache})
	s.compileKernelFn = compile
	if _, err := s.ensureKernel(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if n := builds.Load(); n != 2 {
		t.Fatalf("corrupt kernel not rebuilt (%d builds)", n)
	}
}

func TestKernelFallbackWithoutSource(t *testing.T) {
	s := newTestStore(t, Options{})
	k := fakeKernel(t, s)
	s.kernelVersionFn = kernelSourceVersion
	saved := extraToolDirs
	extraToolDirs = nil
	defer func() { extraToolDirs = saved }()
	t.Setenv("PATH", t.TempDir()) // no dpkg-query: source version unknown
	got, err := s.Kernel(context.Background())
	if err != nil || got != k {
		t.Fatalf("fallback: %+v, %v", got, err)
	}
}

// Pull of an install whose shared kernel got corrupted rebuilds the kernel
// in place and updates the manifest to the new digest; the image is kept.
func TestPullRepairsKernel(t *testing.T) {
	agent := writeStaticELF(t)
	s := newTestStore(t, Options{AgentPath: agent})
	ctx := context.Background()
	ag, _, err := s.agent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	version := "12.20250101." + ag.sha256[:8]
	m := fakeInstall(t, s, "debian:12", version, ag.sha256, testNow())
	data, _ := os.ReadFile(m.Kernel.Path)
	data[10] ^= 0xff
	os.WriteFile(m.Kernel.Path, data, 0o644)
	builds := 0
	s.compileKernelFn = func(ctx context.Context, dir string) (string, string, error) {
		builds++
		p := filepath.Join(dir, "vmlinux")
		writeFile(t, p, 2000)
		return p, "6.1.0-rebuilt", nil
	}
	env, err := s.Pull(ctx, "debian:12", false)
	if err != nil {
		t.Fatal(err)
	}
	if builds != 1 || env.Manifest.Version != version || env.Manifest.Kernel.Size != 2000 ||
		env.Manifest.Kernel.Release != "6.1.0-rebuilt" || env.Manifest.Kernel.SHA256 == m.Kernel.SHA256 {
		t.Fatalf("builds %d, manifest %+v", builds, env.Manifest)
	}
	onDisk, err := readManifest(s.root, env.Dir)
	if err != nil || onDisk.Kernel != env.Manifest.Kernel {
		t.Fatalf("manifest on disk %+v, %v", onDisk, err)
	}
	if _, err := s.Get(ctx, "debian:12"); err != nil {
		t.Fatal(err)
	}
	// Intact now: a second pull builds nothing.
	if _, err := s.Pull(ctx, "debian:12", false); err != nil || builds != 1 {
		t.Fatalf("second pull: %v, builds %d", err, builds)
	}
}

func TestCachedKernel(t *testing.T) {
	s := newTestStore(t, Options{})
	if _, ok := s.CachedKernel(); ok {
		t.Fatal("empty cache has a kernel")
	}
	writeFile(t, filepath.Join(s.root, "kernels", "0000000000000000", "vmlinux"), 10)
	if _, ok := s.CachedKernel(); ok {
		t.Fatal("a kernel of another config counted")
	}
	k := fakeKernel(t, s)
	if got, ok := s.CachedKernel(); !ok || got != k {
		t.Fatalf("got %+v %v", got, ok)
	}
}
