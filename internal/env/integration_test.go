package env

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// prebuiltKernel is a vmlinux already built from the same fragment (by
// `make test`'s `pyro env pull`, in the default cache), used to save the ~5
// minute kernel build. PYRO_TEST_VMLINUX overrides the path;
// PYRO_TEST_KERNEL_BUILD=1 forces the real build instead.
func prebuiltKernel() string {
	if os.Getenv("PYRO_TEST_KERNEL_BUILD") == "1" {
		return ""
	}
	if p := os.Getenv("PYRO_TEST_VMLINUX"); p != "" && fileSize(p) > 0 {
		return p
	}
	if dir, err := DefaultCacheDir(); err == nil {
		if k, ok := NewStore(Options{CacheDir: dir}).CachedKernel(); ok {
			return k.Path
		}
	}
	return ""
}

// buildStaticAgent compiles a tiny static Go program to stand in for the agent.
func buildStaticAgent(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	os.WriteFile(src, []byte("package main\n\nfunc main() { println(\"pyro test agent\") }\n"), 0o644)
	out := filepath.Join(dir, "pyro-agent")
	cmd := exec.Command("go", "build", "-o", out, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building test agent: %v\n%s", err, b)
	}
	return out
}

func TestIntegrationBuildDebian12Base(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a real environment (mmdebstrap, network): run without -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("building images needs root")
	}
	if err := checkTools(append(append([]hostTool{}, baseTools...), imageTools...)...); err != nil {
		t.Skip(err)
	}
	if _, err := lookTool("debugfs"); err != nil {
		t.Skip("debugfs missing")
	}
	ctx := context.Background()
	cache := t.TempDir()
	agent := buildStaticAgent(t)

	var mu sync.Mutex
	stages := map[string]int{}
	var log []string
	opts := Options{CacheDir: cache, AgentPath: agent, Progress: func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		stages[ev.Stage]++
		if ev.Stage != "kernel" || ev.Done == 0 {
			log = append(log, ev.Stage+": "+ev.Message)
		}
	}}
	newStore := func() *Store {
		s := NewStore(opts)
		if vm := prebuiltKernel(); vm != "" {
			s.compileKernelFn = func(ctx context.Context, dir string) (string, string, error) {
				return vm, "6.1.192", nil
			}
		}
		return s
	}

	// Two concurrent Ensures (as from two processes): one builds, the other
	// waits on the lock and reuses the result.
	start := time.Now()
	var wg sync.WaitGroup
	envs := make([]*Environment, 2)
	errs := make([]error, 2)
	for i := range 2 {
		s := newStore()
		wg.Add(1)
		go func() {
			defer wg.Done()
			envs[i], errs[i] = s.Ensure(ctx, "debian:12-base")
		}()
	}
	wg.Wait()
	t.Logf("first build (kernel prebuilt: %v): %s", prebuiltKernel() != "", time.Since(start).Round(time.Millisecond))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("ensure %d: %v\nprogress:\n%s", i, err, strings.Join(log, "\n"))
		}
	}
	env := envs[0]
	if envs[1].Manifest.Version != env.Manifest.Version || envs[1].RootfsPath != env.RootfsPath {
		t.Fatalf("two builds: %s vs %s", env.Manifest.Version, envs[1].Manifest.Version)
	}
	if stages["debootstrap"] == 0 || stages["image"] == 0 || stages["kernel"] == 0 {
		t.Errorf("progress stages %v", stages)
	}
	t.Logf("progress:\n%s", strings.Join(log, "\n"))

	s := newStore()
	m := env.Manifest
	ag, _, _ := s.agent(ctx)
	if m.Name != "debian:12-base" || !validVersion(m.Version) || !strings.HasSuffix(m.Version, ag.sha256[:8]) ||
		m.AgentSHA256 != ag.sha256 || m.Rootfs.Size <= 512<<20 || m.Rootfs.DiskUsage <= 0 ||
		m.Rootfs.DiskUsage >= m.Rootfs.Size || len(m.Rootfs.SHA256) != 64 || m.Kernel.Size <= 0 ||
		m.Kernel.Release == "" || len(m.Kernel.ConfigHash) != 16 || m.Description == "" || m.CreatedAt.IsZero() {
		t.Fatalf("manifest %+v", m)
	}
	var sawBash, sawProcps bool
	for _, p := range m.Packages {
		sawBash = sawBash || strings.HasPrefix(p, "bash=")
		sawProcps = sawProcps || strings.HasPrefix(p, "procps=")
	}
	if !sawBash || !sawProcps || len(m.Packages) < 50 {
		t.Fatalf("packages (%d): %v", len(m.Packages), m.Packages)
	}
	t.Logf("rootfs %d MiB apparent, %d MiB on disk, %d packages", m.Rootfs.Size>>20, m.Rootfs.DiskUsage>>20, len(m.Packages))
	if sum, _, _ := sha256File(ctx, env.RootfsPath, nil); sum != m.Rootfs.SHA256 {
		t.Fatal("rootfs sha256 mismatch")
	}
	if got, err := s.Inspect(ctx, "debian:12-base"); err != nil || got.Version != m.Version {
		t.Fatalf("inspect: %v %v", got, err)
	}

	// The image is ext4 and holds the agent and our /etc files.
	debugfs := func(req string) string {
		out, err := exec.Command(mustTool(t, "debugfs"), "-R", req, env.RootfsPath).CombinedOutput()
		if err != nil {
			t.Fatalf("debugfs %s: %v\n%s", req, err, out)
		}
		return string(out)
	}
	stat := debugfs("stat /usr/sbin/pyro-agent")
	agentSize := fileSize(agent)
	if !strings.Contains(stat, "Type: regular") || !strings.Contains(stat, "Mode:  0755") ||
		!strings.Contains(stat, "User:     0") || !strings.Contains(stat, "Size: "+strconv.FormatInt(agentSize, 10)) {
		t.Fatalf("agent in image:\n%s", stat)
	}
	if out := debugfs("stat /sbin"); !strings.Contains(out, "Type: symlink") {
		t.Fatalf("/sbin:\n%s", out)
	}
	if out := debugfs("cat /etc/resolv.conf"); !strings.Contains(out, "nameserver 10.0.2.3") {
		t.Fatalf("resolv.conf: %s", out)
	}
	if out := debugfs("cat /etc/hostname"); !strings.Contains(out, "pyro") {
		t.Fatalf("hostname: %s", out)
	}
	if out := debugfs("stat /workspace"); !strings.Contains(out, "Type: directory") || !strings.Contains(out, "Mode:  0755") {
		t.Fatalf("/workspace:\n%s", out)
	}
	if out, err := exec.Command(mustTool(t, "e2fsck"), "-fn", env.RootfsPath).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck: %v\n%s", err, out)
	}

	// A verified pull of an intact install is a no-op.
	again, err := s.Pull(ctx, "debian:12-base", false)
	if err != nil || again.Manifest.Version != m.Version {
		t.Fatalf("pull intact: %v %v", again, err)
	}

	// Flip a byte: the cheap check still passes, Verify notices and rebuilds
	// from the cached base (no mmdebstrap run) as a new version.
	f, _ := os.OpenFile(env.RootfsPath, os.O_RDWR, 0)
	b := make([]byte, 1)
	off := m.Rootfs.Size / 3
	f.ReadAt(b, off)
	b[0] ^= 0x5a
	f.WriteAt(b, off)
	f.Close()
	if _, err := s.Get(ctx, "debian:12-base"); err != nil {
		t.Fatalf("get after flip (cheap check): %v", err)
	}
	mu.Lock()
	debootstraps := stages["debootstrap"]
	mu.Unlock()
	start = time.Now()
	repaired, err := s.Verify(ctx, "debian:12-base")
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	t.Logf("repair (image rebuild from cached base): %s", time.Since(start).Round(time.Millisecond))
	if repaired.Manifest.Version == m.Version || repaired.Manifest.Rootfs.SHA256 == m.Rootfs.SHA256 {
		t.Fatalf("not repaired: %s", repaired.Manifest.Version)
	}
	if _, err := os.Stat(env.Dir); !os.IsNotExist(err) {
		t.Fatal("damaged version left in place")
	}
	mu.Lock()
	if stages["debootstrap"] != debootstraps {
		t.Error("repair re-ran mmdebstrap")
	}
	mu.Unlock()
	if got, err := s.Get(ctx, "debian:12-base"); err != nil || got.Manifest.Version != repaired.Manifest.Version {
		t.Fatalf("get after repair: %v %v", got, err)
	}

	// Prune with the environment in use keeps it; without, removes it.
	if res, err := s.Prune(ctx, func(string, string) bool { return true }); err != nil || len(res.Removed) != 0 {
		t.Fatalf("prune in use: %+v %v", res, err)
	}
	res, err := s.Prune(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || res.Removed[0].Kind != "environment" || res.BytesFreed < m.Rootfs.DiskUsage/2 {
		t.Fatalf("prune: %+v", res)
	}
	if _, err := s.Get(ctx, "debian:12-base"); errdefs.CodeOf(err) != errdefs.CodeEnvironmentMissing {
		t.Fatalf("get after prune: %v", err)
	}
	// The kernel and the catalog's base tarball survive a prune.
	if _, err := os.Stat(repaired.KernelPath); err != nil {
		t.Fatal("kernel pruned")
	}
	e, _ := lookup("debian:12-base")
	if _, ok := s.cachedBase(e); !ok {
		t.Fatal("base tarball pruned")
	}
	if entries, _ := os.ReadDir(filepath.Join(cache, "tmp")); len(entries) != 0 {
		t.Fatalf("tmp not empty: %v", entries)
	}
}

func mustTool(t *testing.T, name string) string {
	p, err := lookTool(name)
	if err != nil {
		t.Skipf("%s missing", name)
	}
	return p
}

// Builds every catalog environment and logs the timings of each stage:
// PYRO_TEST_BUILD_ALL=1 (network, several minutes).
func TestIntegrationBuildCatalog(t *testing.T) {
	if testing.Short() || os.Getenv("PYRO_TEST_BUILD_ALL") != "1" {
		t.Skip("set PYRO_TEST_BUILD_ALL=1 to build the whole catalog")
	}
	if os.Geteuid() != 0 {
		t.Skip("building images needs root")
	}
	ctx := context.Background()
	agent := buildStaticAgent(t)
	var stageStart time.Time
	var stage string
	s := NewStore(Options{CacheDir: t.TempDir(), AgentPath: agent, Progress: func(ev Event) {
		if ev.Stage != stage {
			if stage != "" {
				t.Logf("  %s: %s", stage, time.Since(stageStart).Round(100*time.Millisecond))
			}
			stage, stageStart = ev.Stage, time.Now()
		}
	}})
	if vm := prebuiltKernel(); vm != "" {
		s.compileKernelFn = func(ctx context.Context, dir string) (string, string, error) { return vm, "6.1.192", nil }
	}
	for _, e := range catalog {
		start := time.Now()
		stage = ""
		env, err := s.Pull(ctx, e.Name, false)
		if err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		t.Logf("  %s: %s", stage, time.Since(stageStart).Round(100*time.Millisecond))
		m := env.Manifest
		t.Logf("%s: %s total; rootfs %d MiB apparent, %d MiB on disk; %d packages",
			e.Name, time.Since(start).Round(100*time.Millisecond), m.Rootfs.Size>>20, m.Rootfs.DiskUsage>>20, len(m.Packages))
		base, _ := s.basePaths(e)
		t.Logf("  base tarball %d MiB", fileSize(base)>>20)
	}
}
