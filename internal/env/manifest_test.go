package env

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

func testNow() time.Time { return time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC) }

func TestManifestAtomicRoundTrip(t *testing.T) {
	s := newTestStore(t, Options{})
	m := fakeInstall(t, s, "debian:12", "12.20250101.aaaaaaaa", agentA, testNow())
	dir := filepath.Join(s.root, "environments", "debian-12", "12.20250101.aaaaaaaa")

	// On disk: relative paths, no temp files left behind.
	raw, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var disk map[string]any
	if err := json.Unmarshal(raw, &disk); err != nil {
		t.Fatal(err)
	}
	rootfs := disk["rootfs"].(map[string]any)
	if rootfs["path"] != "environments/debian-12/12.20250101.aaaaaaaa/rootfs.ext4" {
		t.Fatalf("rootfs path on disk %v", rootfs["path"])
	}
	for _, k := range []string{"name", "version", "description", "created_at", "kernel", "rootfs", "agent_sha256", "packages"} {
		if _, ok := disk[k]; !ok {
			t.Errorf("manifest lacks %q", k)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temp file left: %s", e.Name())
		}
	}

	// In memory: absolute paths, same content.
	got, err := readManifest(s.root, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Rootfs != m.Rootfs || got.Kernel != m.Kernel || got.Name != m.Name || !got.CreatedAt.Equal(m.CreatedAt) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
	}

	// Rewriting replaces atomically.
	got.Description = "changed"
	if err := writeManifest(s.root, dir, got); err != nil {
		t.Fatal(err)
	}
	again, _ := readManifest(s.root, dir)
	if again.Description != "changed" {
		t.Fatal("rewrite lost")
	}
}

func TestManifestRejectsEscapingPaths(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "environments", "debian-12", "12.20250101.aaaaaaaa")
	os.MkdirAll(dir, 0o755)
	bad := `{"schema_version":1,"name":"debian:12","version":"12.20250101.aaaaaaaa",
	 "kernel":{"path":"../../etc/passwd","size":1},"rootfs":{"path":"/etc/shadow","size":1}}`
	os.WriteFile(filepath.Join(dir, manifestFile), []byte(bad), 0o644)
	if _, err := readManifest(root, dir); err == nil {
		t.Fatal("escaping paths accepted")
	}
	if err := writeManifest(root, dir, &Manifest{Kernel: KernelInfo{Path: "/etc/passwd"}}); err == nil {
		t.Fatal("writing a path outside the cache accepted")
	}
}

func TestValidityTruncatedRootfs(t *testing.T) {
	s := newTestStore(t, Options{})
	ctx := context.Background()
	m := fakeInstall(t, s, "debian:12", "12.20250101.aaaaaaaa", agentA, testNow())
	if _, err := s.Get(ctx, "debian:12"); err != nil {
		t.Fatalf("valid install: %v", err)
	}
	if err := os.Truncate(m.Rootfs.Path, 4096); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(ctx, "debian:12")
	if errdefs.CodeOf(err) != errdefs.CodeEnvironmentMissing || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("truncated rootfs: %v", err)
	}
	// A truncated shared kernel also invalidates it for Get.
	os.Truncate(m.Rootfs.Path, 8192)
	if _, err := s.Get(ctx, "debian:12"); err != nil {
		t.Fatalf("size restored: %v", err)
	}
	os.Truncate(m.Kernel.Path, 10)
	if _, err := s.Get(ctx, "debian:12"); errdefs.CodeOf(err) != errdefs.CodeEnvironmentMissing {
		t.Fatalf("truncated kernel: %v", err)
	}
}

func TestValidityMissingManifest(t *testing.T) {
	s := newTestStore(t, Options{})
	ctx := context.Background()
	// A half-built install: image present, no manifest.
	writeFile(t, filepath.Join(s.root, "environments", "debian-12", "12.20250102.aaaaaaaa", rootfsFile), 8192)
	_, err := s.Get(ctx, "debian:12")
	if errdefs.CodeOf(err) != errdefs.CodeEnvironmentMissing || !strings.Contains(err.Error(), "is not installed") {
		t.Fatalf("half-built: %v", err)
	}
	// An older complete one is used instead of the half-built newer one.
	fakeInstall(t, s, "debian:12", "12.20250101.aaaaaaaa", agentA, testNow())
	env, err := s.Get(ctx, "debian:12")
	if err != nil || env.Manifest.Version != "12.20250101.aaaaaaaa" {
		t.Fatalf("got %v, %v", env, err)
	}
	if env.RootfsPath != env.Manifest.Rootfs.Path || env.KernelPath != env.Manifest.Kernel.Path || !filepath.IsAbs(env.RootfsPath) {
		t.Fatalf("environment paths: %+v", env)
	}
}

func TestGetPicksNewestAndMatchingAgent(t *testing.T) {
	agent := writeStaticELF(t)
	s := newTestStore(t, Options{AgentPath: agent})
	ctx := context.Background()
	ag, _, err := s.agent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fakeInstall(t, s, "debian:12", "12.20250101.aaaaaaaa", agentA, testNow())
	_, err = s.Get(ctx, "debian:12")
	if errdefs.CodeOf(err) != errdefs.CodeEnvironmentMissing || !strings.Contains(err.Error(), "different guest agent") {
		t.Fatalf("agent mismatch: %v", err)
	}
	// Inspect still shows the installed (other-agent) version.
	if m, err := s.Inspect(ctx, "debian:12"); err != nil || m.Version != "12.20250101.aaaaaaaa" {
		t.Fatalf("inspect: %v %v", m, err)
	}
	v1 := "12.20250101." + ag.sha256[:8]
	v2 := "12.20250102." + ag.sha256[:8]
	fakeInstall(t, s, "debian:12", v1, ag.sha256, testNow())
	fakeInstall(t, s, "debian:12", v2, ag.sha256, testNow().Add(24*time.Hour))
	env, err := s.Get(ctx, "debian:12")
	if err != nil || env.Manifest.Version != v2 {
		t.Fatalf("got %v, %v", env, err)
	}
}

func TestNewVersion(t *testing.T) {
	s := newTestStore(t, Options{})
	e, _ := lookup("debian:12")
	now := testNow()
	v := s.newVersion(e, agentA, now)
	if v != "12.20250101.aaaaaaaa" || !validVersion(v) {
		t.Fatalf("version %q", v)
	}
	os.MkdirAll(filepath.Join(s.root, "environments", "debian-12", v), 0o755)
	if v2 := s.newVersion(e, agentA, now); v2 != v+"-2" || !validVersion(v2) {
		t.Fatalf("second version %q", v2)
	}
	for _, bad := range []string{"..", "12.2025.aaaaaaaa", "12.20250101.AAAAAAAA", "12.20250101.aaaaaaaa/x"} {
		if validVersion(bad) {
			t.Errorf("validVersion(%q)", bad)
		}
	}
}
