package env

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/fsutil"
)

const testSourceVersion = "6.1.0-test"

// newTestStore is a Store over a temp cache whose kernel source version is
// fixed, so no test depends on linux-source being installed.
func newTestStore(t *testing.T, opts Options) *Store {
	t.Helper()
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	s := NewStore(opts)
	s.kernelVersionFn = func(context.Context) (string, error) { return testSourceVersion, nil }
	return s
}

func writeFile(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeKernel installs a fake kernels/<current hash>.
func fakeKernel(t *testing.T, s *Store) KernelInfo {
	t.Helper()
	hash := kernelConfigHash(kernelFragment, testSourceVersion)
	dir := s.kernelDir(hash)
	writeFile(t, filepath.Join(dir, "vmlinux"), 1000)
	sum, size, err := sha256File(context.Background(), filepath.Join(dir, "vmlinux"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := kernelRecord{SHA256: sum, Size: size, Release: "6.1.0", ConfigHash: hash, SourceVersion: testSourceVersion}
	if err := fsutil.WriteJSONAtomic(filepath.Join(dir, "kernel.json"), rec, 0o644); err != nil {
		t.Fatal(err)
	}
	return KernelInfo{Path: filepath.Join(dir, "vmlinux"), SHA256: sum, Size: size, Release: "6.1.0", ConfigHash: hash}
}

// fakeInstall writes a complete-looking install of name at version.
func fakeInstall(t *testing.T, s *Store, name, version, agentSum string, created time.Time) *Manifest {
	t.Helper()
	e, err := lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	k := fakeKernel(t, s)
	dir := filepath.Join(s.root, "environments", slug(name), version)
	img := filepath.Join(dir, rootfsFile)
	writeFile(t, img, 8192)
	sum, size, _ := sha256File(context.Background(), img, nil)
	m := &Manifest{
		SchemaVersion: manifestSchemaVersion, Name: name, Version: version, Description: e.Description,
		CreatedAt: created.UTC(), Kernel: k,
		Rootfs:      RootfsInfo{Path: img, SHA256: sum, Size: size, DiskUsage: size},
		AgentSHA256: agentSum, RecipeHash: e.recipeHash(), Packages: []string{"bash=5.2.15-2+b7"}, ImageRevision: imageRevision,
	}
	if err := writeManifest(s.root, dir, m); err != nil {
		t.Fatal(err)
	}
	return m
}

const agentA = "aaaaaaaa11111111111111111111111111111111111111111111111111111111"

// writeStaticELF writes a minimal static x86-64 ELF executable header: enough
// for the agent checks, never executed.
func writeStaticELF(t *testing.T) string {
	t.Helper()
	h := make([]byte, 64)
	copy(h, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1})
	le16 := func(off int, v uint16) { h[off], h[off+1] = byte(v), byte(v>>8) }
	le16(16, 2)  // ET_EXEC
	le16(18, 62) // EM_X86_64
	h[20] = 1    // e_version
	le16(52, 64) // e_ehsize
	le16(54, 56) // e_phentsize
	le16(58, 64) // e_shentsize
	p := filepath.Join(t.TempDir(), "pyro-agent")
	if err := os.WriteFile(p, h, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
