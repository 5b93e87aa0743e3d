package env

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/testutil"
)

// testDisk keeps test images small: hashing the default headroom (512 MiB
// of sparse zeros) on every conversion is most of a test's time.
const testDisk = 64 << 20

func requireRootAndMkfs(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("converting images sets file owners: needs root")
	}
	if _, err := lookTool("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 (e2fsprogs) missing")
	}
}

// imageStore is a store with a fake kernel and a fake agent: enough to pull
// and convert images, not to boot them.
func imageStore(t *testing.T, insecure ...string) *Store {
	t.Helper()
	requireRootAndMkfs(t)
	s := newTestStore(t, Options{AgentPath: writeStaticELF(t), InsecureRegistries: insecure})
	fakeKernel(t, s)
	return s
}

func layerOf(t *testing.T, entries ...testutil.TarEntry) *bytes.Buffer {
	return testutil.Tar(t, entries...)
}

func reg(name, body string, mode int64) testutil.TarEntry {
	return testutil.TarEntry{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}, Body: body}
}

func busyboxImage(t *testing.T, more ...*bytes.Buffer) v1.Image {
	return testutil.Image(t, []string{"PATH=/opt/tools/bin:/bin", "GREETING=hello"}, append([]*bytes.Buffer{testutil.BusyboxLayer(t)}, more...)...)
}

// debugfsCat reads a file out of an ext4 image.
func debugfsCat(t *testing.T, img, path string) string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", "cat "+path, img).Output()
	if err != nil {
		t.Fatalf("debugfs cat %s: %v", path, err)
	}
	return string(out)
}

// assertNothingHalfway checks a failed pull left no image, reference, blob
// file in progress or build directory behind.
func assertNothingHalfway(t *testing.T, s *Store) {
	t.Helper()
	for _, pattern := range []string{"images/*/*", "refs/*", "tmp/*", "blobs/sha256/.tmp-*"} {
		if left, _ := filepath.Glob(filepath.Join(s.root, pattern)); len(left) > 0 {
			t.Errorf("left behind after a failed pull: %v", left)
		}
	}
}

func TestPullImageConvertsCachesAndPrunes(t *testing.T) {
	host := testutil.Registry(t, "", "")
	s := imageStore(t, host)
	img := busyboxImage(t, layerOf(t, reg("opt/tools/bin/hello", "#!/bin/sh\necho hi\n", 0o755), reg("etc/gone", "x", 0o644)),
		layerOf(t, reg("etc/.wh.gone", "", 0o644)))
	ref := host + "/team/bb:1"
	testutil.Push(t, ref, img)
	digest, _ := img.Digest()

	var events []Event
	ctx := WithProgress(t.Context(), func(e Event) { events = append(events, e) })
	env, err := s.PullWith(ctx, ref, PullOptions{DiskSize: testDisk})
	if err != nil {
		t.Fatal(err)
	}
	var fetched bool
	for _, e := range events {
		fetched = fetched || (e.Stage == "pull" && e.Total > 0 && e.Done == e.Total)
	}
	if !fetched {
		t.Errorf("no byte progress for the layers: %+v", events)
	}
	m := env.Manifest
	if m.Source != SourceOCI || m.Name != ref || m.Digest != digest.String() || len(m.Image.Layers) != 3 ||
		m.Image.Config.WorkingDir != "/srv" || m.Image.Config.Env[0] != "PATH=/opt/tools/bin:/bin" {
		t.Fatalf("manifest %+v image %+v", m, m.Image)
	}
	if got := debugfsCat(t, env.RootfsPath, "/etc/pyro/env"); got != "PATH=/opt/tools/bin:/bin\nGREETING=hello\n" {
		t.Errorf("image env in the rootfs = %q", got)
	}
	if got := debugfsCat(t, env.RootfsPath, "/opt/tools/bin/hello"); !strings.Contains(got, "echo hi") {
		t.Errorf("layer file = %q", got)
	}
	if got := debugfsCat(t, env.RootfsPath, "/etc/gone"); got != "" {
		t.Errorf("whiteout file still in the image: %q", got)
	}

	// Re-pull of the unchanged digest: a no-op, fast.
	start := time.Now()
	again, err := s.PullWith(t.Context(), ref, PullOptions{DiskSize: testDisk})
	if err != nil || again.Dir != env.Dir {
		t.Fatalf("re-pull: %v %s vs %s", err, again.Dir, env.Dir)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("re-pull took %s", d)
	}
	// Force makes a new version; the old one stays (overlays may use it).
	forced, err := s.PullWith(t.Context(), ref, PullOptions{Force: true, DiskSize: testDisk})
	if err != nil || forced.Dir == env.Dir {
		t.Fatalf("force: %v", err)
	}

	infos, _ := s.List(t.Context())
	var info *Info
	for i := range infos {
		if infos[i].Name == ref {
			info = &infos[i]
		}
	}
	if info == nil || !info.Installed || info.Source != SourceOCI || info.Digest != digest.String() || info.RootfsSize == 0 {
		t.Fatalf("list: %+v", infos)
	}
	if im, err := s.Inspect(t.Context(), ref); err != nil || im.Image == nil || len(im.Image.Layers) != 3 {
		t.Fatalf("inspect: %v", err)
	}

	// Prune keeps what a workspace's disk is backed by, then removes all.
	res, err := s.Prune(t.Context(), func(_, rootfs string) bool { return rootfs == forced.RootfsPath })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(t.Context(), ref); err != nil {
		t.Fatalf("in-use image pruned: %v (removed %+v)", err, res.Removed)
	}
	if _, err := os.Stat(env.Dir); !os.IsNotExist(err) {
		t.Errorf("unused version kept: %v", err)
	}
	if _, err := s.Prune(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	for _, pattern := range []string{"images/*", "refs/*", "blobs/sha256/*"} {
		if left, _ := filepath.Glob(filepath.Join(s.root, pattern)); len(left) > 0 {
			t.Errorf("prune left %v", left)
		}
	}
}

// The cache answers without the network once pulled; the policy decides
// what Ensure may pull.
func TestEnsureImageOfflineAndPolicy(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	host := strings.TrimPrefix(srv.URL, "http://")
	s := imageStore(t, host)
	s.opts.PullAllowed = func(ref string) bool { return strings.HasPrefix(ref, host+"/allowed/") }
	testutil.Push(t, host+"/allowed/bb:1", busyboxImage(t))
	testutil.Push(t, host+"/denied/bb:1", busyboxImage(t))

	_, err := s.Ensure(t.Context(), host+"/denied/bb:1")
	if errdefs.CodeOf(err) != errdefs.CodePullNotAllowed || !strings.Contains(err.Error(), "--allow-pull") {
		t.Fatalf("denied: %v", err)
	}
	if _, err := s.Ensure(t.Context(), host+"/allowed/bb:1"); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if _, err := s.Ensure(t.Context(), host+"/allowed/bb:1"); err != nil {
		t.Fatalf("cached image needed the registry: %v", err)
	}
	_, err = s.Ensure(t.Context(), host+"/denied/bb:1")
	if errdefs.CodeOf(err) != errdefs.CodePullNotAllowed || !strings.Contains(err.Error(), host+"/allowed/bb:1") {
		t.Fatalf("the error should name the local environments: %v", err)
	}
}

func TestPullImageFailuresLeaveNothingAndRetryWorks(t *testing.T) {
	host := testutil.Registry(t, "", "")
	s := imageStore(t, host)

	noShell := testutil.Image(t, nil, layerOf(t, reg("app/server", "bin", 0o755)))
	testutil.Push(t, host+"/distroless:1", noShell)
	if _, err := s.PullWith(t.Context(), host+"/distroless:1", PullOptions{DiskSize: testDisk}); errdefs.CodeOf(err) != errdefs.CodeImageNoShell ||
		!strings.Contains(err.Error(), "/bin/sh") {
		t.Fatalf("no shell: %v", err)
	}
	assertNothingHalfway(t, s)

	hostile := busyboxImage(t, layerOf(t, reg("../../escape", "x", 0o644)))
	testutil.Push(t, host+"/hostile:1", hostile)
	if _, err := s.PullWith(t.Context(), host+"/hostile:1", PullOptions{DiskSize: testDisk}); errdefs.CodeOf(err) != errdefs.CodeImageUnsafe {
		t.Fatalf("hostile: %v", err)
	}
	assertNothingHalfway(t, s)

	// Fixed upstream: the same tag now pulls.
	testutil.Push(t, host+"/hostile:1", busyboxImage(t))
	if _, err := s.PullWith(t.Context(), host+"/hostile:1", PullOptions{DiskSize: testDisk}); err != nil {
		t.Fatalf("retry: %v", err)
	}

	if _, err := s.PullWith(t.Context(), host+"/tiny:1", PullOptions{DiskSize: 1 << 20}); errdefs.CodeOf(err) != errdefs.CodeEnvironmentMissing {
		t.Fatalf("missing image: %v", err)
	}
	testutil.Push(t, host+"/tiny:1", busyboxImage(t))
	if _, err := s.PullWith(t.Context(), host+"/tiny:1", PullOptions{DiskSize: 1 << 20}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("disk too small: %v", err)
	}
	env, err := s.PullWith(t.Context(), host+"/tiny:1", PullOptions{DiskSize: 300 << 20})
	if err != nil || env.Manifest.Rootfs.Size != 300<<20 || env.Manifest.Rootfs.DiskUsage >= 100<<20 {
		t.Fatalf("disk size: %v %+v", err, env.Manifest.Rootfs)
	}
}

// A registry that dies in the middle of a layer: typed error, nothing
// half-visible, and the next pull (registry back) works.
func TestPullImageRegistryDiesMidLayer(t *testing.T) {
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var mu sync.Mutex
	broken := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		b := broken
		mu.Unlock()
		if b && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			rec := httptest.NewRecorder()
			inner.ServeHTTP(rec, r)
			if rec.Body.Len() > 100000 { // the busybox layer, not the config
				w.Header().Set("Content-Length", rec.Header().Get("Content-Length"))
				w.WriteHeader(http.StatusOK)
				w.Write(rec.Body.Bytes()[:rec.Body.Len()/2])
				panic(http.ErrAbortHandler)
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	s := imageStore(t, host)
	testutil.Push(t, host+"/bb:1", busyboxImage(t))
	_, err := s.PullWith(t.Context(), host+"/bb:1", PullOptions{DiskSize: testDisk})
	if c := errdefs.CodeOf(err); c != errdefs.CodeImagePull && c != errdefs.CodeImageCorrupt {
		t.Fatalf("got %v", err)
	}
	assertNothingHalfway(t, s)
	mu.Lock()
	broken = false
	mu.Unlock()
	if _, err := s.PullWith(t.Context(), host+"/bb:1", PullOptions{DiskSize: testDisk}); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

func TestPullImageConcurrentlyOnce(t *testing.T) {
	host := testutil.Registry(t, "", "")
	s := imageStore(t, host)
	testutil.Push(t, host+"/bb:1", busyboxImage(t))
	var wg sync.WaitGroup
	dirs := make([]string, 3)
	errs := make([]error, 3)
	for i := range dirs {
		wg.Go(func() {
			// Each its own Store, as separate pyro processes would be.
			other := NewStore(s.opts)
			other.kernelVersionFn = s.kernelVersionFn
			e, err := other.PullWith(t.Context(), host+"/bb:1", PullOptions{DiskSize: testDisk})
			errs[i] = err
			if err == nil {
				dirs[i] = e.Dir
			}
		})
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil || dirs[i] != dirs[0] {
			t.Fatalf("pull %d: %v (%s vs %s)", i, errs[i], dirs[i], dirs[0])
		}
	}
}

func TestPullImageFromLayoutAndArchive(t *testing.T) {
	s := imageStore(t)
	// An absolute /sbin link (os.Root refuses to follow those): the agent
	// still lands, in /usr/sbin.
	img := busyboxImage(t, layerOf(t,
		testutil.TarEntry{Header: tar.Header{Typeflag: tar.TypeDir, Name: "usr/sbin/", Mode: 0o755}},
		testutil.TarEntry{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: "sbin", Linkname: "/usr/sbin", Mode: 0o777}}))
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}
	e, err := s.PullWith(t.Context(), "oci-layout:"+dir+":v1", PullOptions{DiskSize: testDisk})
	if err != nil || e.Manifest.Reference != "oci-layout:"+dir+":v1" {
		t.Fatalf("layout: %v", err)
	}
	if got := debugfsCat(t, e.RootfsPath, "/usr/sbin/pyro-agent"); !strings.HasPrefix(got, "\x7fELF") {
		t.Errorf("agent not in /usr/sbin behind the absolute /sbin link: %q", got)
	}
	archive := filepath.Join(t.TempDir(), "bb.tar")
	tag, _ := name.NewTag("example/bb:1")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		t.Fatal(err)
	}
	e, err = s.PullWith(t.Context(), "docker-archive:"+archive, PullOptions{DiskSize: testDisk})
	if err != nil || e.Manifest.Source != SourceOCI || !strings.Contains(debugfsCat(t, e.RootfsPath, "/etc/pyro/env"), "GREETING=hello") {
		t.Fatalf("archive: %v", err)
	}
	if _, err := s.Get(t.Context(), "docker-archive:"+archive); err != nil {
		t.Fatal(err)
	}
}
