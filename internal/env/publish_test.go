package env

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/pyrovm/pyro/internal/env/artifact"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/testutil"
)

// publisher is a store holding debian:12-base (fake kernel, an 8 MiB
// sparse root filesystem) built with agent, ready to push.
func publisher(t *testing.T, agent string) *Store {
	t.Helper()
	s := newTestStore(t, Options{AgentPath: agent})
	ag, _, err := s.agent(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	m := fakeInstall(t, s, "debian:12-base", "12.20260101."+ag.sha256[:8], ag.sha256, time.Now())
	// A sparse image: data, an 8 MiB hole, data.
	img := m.Rootfs.Path
	f, err := os.OpenFile(img, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	noise := make([]byte, 64<<10) // incompressible: the layer is bigger than the config
	rand.Read(noise)
	f.WriteAt(noise, 0)
	f.WriteAt([]byte("tail of the image"), 8<<20)
	f.Close()
	m.Rootfs.SHA256, m.Rootfs.Size, _ = sha256File(t.Context(), img, nil)
	if err := writeManifest(s.root, filepath.Dir(img), m); err != nil {
		t.Fatal(err)
	}
	return s
}

// puller is an empty store that cannot build anything: no kernel source,
// no mmdebstrap; envRegistry names where the catalog is published.
func puller(t *testing.T, agent, host string) *Store {
	t.Helper()
	testutil.PathWithout(t, testutil.LocalBuilders...)
	s := NewStore(Options{CacheDir: t.TempDir(), AgentPath: agent, InsecureRegistries: []string{host}, EnvRegistry: host + "/pyro"})
	return s
}

// proxy serves a registry through fn, which may change what is sent.
func proxy(t *testing.T, fn func(w http.ResponseWriter, r *http.Request, next http.Handler)) string {
	t.Helper()
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fn(w, r, inner) }))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestPublishRoundTrip(t *testing.T) {
	agent := writeStaticELF(t)
	host := testutil.Registry(t, "", "")
	pub := publisher(t, agent)
	pub.opts.InsecureRegistries = []string{host}
	res, err := pub.Push(t.Context(), "debian:12-base", host+"/pyro/debian:12-base")
	if err != nil {
		t.Fatal(err)
	}
	if res.Reference != host+"/pyro/debian:12-base" || !strings.HasPrefix(res.Digest, "sha256:") || res.ArtifactType != artifact.ArtifactType {
		t.Fatalf("push result %+v", res)
	}
	src, _ := pub.Get(t.Context(), "debian:12-base")

	s := puller(t, agent, host)
	env, err := s.Ensure(t.Context(), "debian:12-base")
	if err != nil {
		t.Fatal(err)
	}
	m := env.Manifest
	if m.Rootfs.SHA256 != src.Manifest.Rootfs.SHA256 || m.Kernel.SHA256 != src.Manifest.Kernel.SHA256 || m.Source != SourceDebian ||
		m.Published == nil || m.Published.Digest != res.Digest || m.Published.Reference != res.Reference {
		t.Fatalf("installed %+v (published %+v)", m, m.Published)
	}
	if m.Rootfs.DiskUsage >= 1<<20 {
		t.Errorf("root filesystem not sparse: %d bytes allocated of %d", m.Rootfs.DiskUsage, m.Rootfs.Size)
	}
	if _, err := os.Stat(filepath.Join(s.root, "kernels", m.Kernel.ConfigHash, "vmlinux")); err != nil {
		t.Errorf("kernel not in the kernel cache: %v", err)
	}
	if got, err := s.Get(t.Context(), "debian:12-base"); err != nil || got.Dir != env.Dir {
		t.Fatalf("get after pull: %v", err)
	}
	for _, left := range []string{"bases", "tmp/*"} {
		if l, _ := filepath.Glob(filepath.Join(s.root, left)); len(l) > 0 && left != "bases" {
			t.Errorf("left %v", l)
		} else if left == "bases" && len(l) > 0 {
			t.Errorf("something was bootstrapped: %v", l)
		}
	}

	// The same artifact by reference: an image-like install, source artifact.
	byRef, err := s.PullWith(t.Context(), host+"/pyro/debian:12-base", PullOptions{})
	if err != nil || byRef.Manifest.Source != SourceArtifact || byRef.Manifest.Digest != res.Digest {
		t.Fatalf("pull by reference: %v %+v", err, byRef)
	}
	infos, _ := s.List(t.Context())
	found := false
	for _, i := range infos {
		found = found || (i.Name == host+"/pyro/debian:12-base" && i.Source == SourceArtifact && i.Installed)
	}
	if !found {
		t.Errorf("env list: %+v", infos)
	}
	// A host that cannot build the kernel takes it from the registry too.
	k := NewStore(Options{CacheDir: t.TempDir(), AgentPath: agent, InsecureRegistries: []string{host}, EnvRegistry: host + "/pyro"})
	if got, err := k.Kernel(t.Context()); err != nil || got.SHA256 != src.Manifest.Kernel.SHA256 {
		t.Fatalf("kernel from the registry: %v %+v", err, got)
	}
}

// A blob whose bytes do not match its digest: typed error, nothing
// installed; the registry fixed, the retry works.
func TestPublishTamperedBlob(t *testing.T) {
	agent := writeStaticELF(t)
	var tamper atomic.Bool
	var rootfsDigest atomic.Value
	rootfsDigest.Store("")
	host := proxy(t, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		d, _ := rootfsDigest.Load().(string)
		if !tamper.Load() || d == "" || r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+d) {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		b := rec.Body.Bytes()
		b[len(b)/2] ^= 0xff
		w.Header().Set("Content-Length", rec.Header().Get("Content-Length"))
		w.WriteHeader(rec.Code)
		w.Write(b)
	})
	pub := publisher(t, agent)
	pub.opts.InsecureRegistries = []string{host}
	if _, err := pub.Push(t.Context(), "debian:12-base", host+"/pyro/debian:12-base"); err != nil {
		t.Fatal(err)
	}
	s := puller(t, agent, host)
	ref, _ := s.registryRef("debian:12-base")
	a, err := s.getArtifact(t.Context(), ref)
	if err != nil || a == nil {
		t.Fatalf("artifact: %v", err)
	}
	rootfsDigest.Store(a.Rootfs.Digest.String())
	tamper.Store(true)

	_, err = s.PullWith(t.Context(), host+"/pyro/debian:12-base", PullOptions{})
	if errdefs.CodeOf(err) != errdefs.CodeImageCorrupt {
		t.Fatalf("tampered blob by reference: %v", err)
	}
	assertNothingHalfway(t, s)
	// The catalog name: the registry fails, and so does the local build
	// (no builders here): one error that names both.
	_, err = s.Ensure(t.Context(), "debian:12-base")
	if err == nil || !strings.Contains(err.Error(), "neither pullable") || !strings.Contains(err.Error(), "tampering") || errdefs.CodeOf(err) != errdefs.CodeHostToolMissing {
		t.Fatalf("tampered blob, no local build: %v", err)
	}
	if l, _ := filepath.Glob(filepath.Join(s.root, "environments", "*", "*")); len(l) > 0 {
		t.Fatalf("half-installed: %v", l)
	}
	assertNothingHalfway(t, s)

	tamper.Store(false)
	if _, err := s.Ensure(t.Context(), "debian:12-base"); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

// The registry dies in the middle of the root filesystem: typed error,
// nothing half-visible, the retry works.
func TestPublishRegistryDies(t *testing.T) {
	agent := writeStaticELF(t)
	var broken atomic.Bool
	host := proxy(t, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if !broken.Load() || r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/sha256:") {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		if rec.Body.Len() < 2000 { // the config: let it through
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return
		}
		w.Header().Set("Content-Length", rec.Header().Get("Content-Length"))
		w.WriteHeader(http.StatusOK)
		w.Write(rec.Body.Bytes()[:rec.Body.Len()/2])
		panic(http.ErrAbortHandler)
	})
	pub := publisher(t, agent)
	pub.opts.InsecureRegistries = []string{host}
	if _, err := pub.Push(t.Context(), "debian:12-base", host+"/pyro/debian:12-base"); err != nil {
		t.Fatal(err)
	}
	s := puller(t, agent, host)
	broken.Store(true)
	_, err := s.PullWith(t.Context(), host+"/pyro/debian:12-base", PullOptions{})
	if c := errdefs.CodeOf(err); c != errdefs.CodeImagePull && c != errdefs.CodeImageCorrupt {
		t.Fatalf("registry died: %v", err)
	}
	assertNothingHalfway(t, s)
	broken.Store(false)
	if _, err := s.PullWith(t.Context(), host+"/pyro/debian:12-base", PullOptions{}); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

// An environment published by a pyro with another guest agent is refused
// with a typed error, and the local build is tried (here: impossible).
func TestPublishAgentMismatch(t *testing.T) {
	host := testutil.Registry(t, "", "")
	pub := publisher(t, writeStaticELF(t))
	pub.opts.InsecureRegistries = []string{host}
	if _, err := pub.Push(t.Context(), "debian:12-base", host+"/pyro/debian:12-base"); err != nil {
		t.Fatal(err)
	}
	other := writeStaticELF(t)
	if err := os.WriteFile(other, append(must(os.ReadFile(other)), 1), 0o755); err != nil {
		t.Fatal(err)
	}
	s := puller(t, other, host)
	_, err := s.PullWith(t.Context(), host+"/pyro/debian:12-base", PullOptions{})
	if errdefs.CodeOf(err) != errdefs.CodeArtifactMismatch || !strings.Contains(err.Error(), "guest agent") {
		t.Fatalf("by reference: %v", err)
	}
	_, err = s.Ensure(t.Context(), "debian:12-base")
	if errdefs.CodeOf(err) != errdefs.CodeHostToolMissing || !strings.Contains(err.Error(), "guest agent") {
		t.Fatalf("catalog name: %v", err)
	}
	var pe *errdefs.Error
	if !errors.As(err, &pe) {
		t.Fatal(err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestPushRefusesBadTargets(t *testing.T) {
	pub := publisher(t, writeStaticELF(t))
	for _, bad := range []string{"oci-layout:/tmp/x", "localhost:5000/x@sha256:" + strings.Repeat("a", 64), "Not A Ref"} {
		if _, err := pub.Push(t.Context(), "debian:12-base", bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, err := pub.Push(t.Context(), "debian:12", "localhost:5000/x:1"); errdefs.CodeOf(err) != errdefs.CodeEnvironmentMissing {
		t.Errorf("not installed: %v", err)
	}
}

func TestRegistryFromConfig(t *testing.T) {
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	t.Setenv(RegistryEnv, "")
	if v, err := RegistryFromConfig(); err != nil || v != "" {
		t.Fatalf("unset: %q %v", v, err)
	}
	os.MkdirAll(filepath.Join(cfg, "pyro"), 0o755)
	os.WriteFile(filepath.Join(cfg, "pyro", "env-registry"), []byte("# team registry\n\nregistry.example.com/pyro/\n"), 0o644)
	if v, err := RegistryFromConfig(); err != nil || v != "registry.example.com/pyro" {
		t.Fatalf("file: %q %v", v, err)
	}
	t.Setenv(RegistryEnv, "localhost:5000/team")
	if v, err := RegistryFromConfig(); err != nil || v != "localhost:5000/team" {
		t.Fatalf("env: %q %v", v, err)
	}
	for _, bad := range []string{"team", "team/sub", "a b"} {
		t.Setenv(RegistryEnv, bad)
		if _, err := RegistryFromConfig(); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

var _ = context.Background

// Prune keeps the kernel an in-use artifact brought, even when it is not
// the kernel this host would build, and removes both once unused.
func TestPruneKeepsArtifactKernel(t *testing.T) {
	agent := writeStaticELF(t)
	host := testutil.Registry(t, "", "")
	pub := publisher(t, agent)
	pub.opts.InsecureRegistries = []string{host}
	ref := host + "/team/base:1"
	if _, err := pub.Push(t.Context(), "debian:12-base", ref); err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t, Options{AgentPath: agent, InsecureRegistries: []string{host}})
	s.kernelVersionFn = func(context.Context) (string, error) { return "6.1.0-other", nil }
	env, err := s.PullWith(t.Context(), ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(t.Context(), func(_, rootfs string) bool { return rootfs == env.RootfsPath }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(t.Context(), ref); err != nil {
		t.Fatalf("in-use artifact environment broken by prune: %v", err)
	}
	if _, err := s.Prune(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(s.root, "kernels", "*")); len(left) > 0 {
		t.Errorf("unused kernel kept: %v", left)
	}
}

// Ctrl-C in the middle of the root filesystem: canceled, nothing
// half-visible, and the next pull works.
func TestPublishCanceled(t *testing.T) {
	agent := writeStaticELF(t)
	var stall atomic.Bool
	started := make(chan struct{}, 1)
	host := proxy(t, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if !stall.Load() || r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/sha256:") {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		if rec.Body.Len() < 2000 {
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return
		}
		w.Header().Set("Content-Length", rec.Header().Get("Content-Length"))
		w.WriteHeader(http.StatusOK)
		w.Write(rec.Body.Bytes()[:rec.Body.Len()/2])
		w.(http.Flusher).Flush()
		started <- struct{}{}
		<-r.Context().Done()
	})
	pub := publisher(t, agent)
	pub.opts.InsecureRegistries = []string{host}
	if _, err := pub.Push(t.Context(), "debian:12-base", host+"/pyro/debian:12-base"); err != nil {
		t.Fatal(err)
	}
	s := puller(t, agent, host)
	stall.Store(true)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-started; cancel() }()
	_, err := s.Ensure(ctx, "debian:12-base")
	if errdefs.CodeOf(err) != errdefs.CodeCanceled {
		t.Fatalf("canceled pull: %v", err)
	}
	if l, _ := filepath.Glob(filepath.Join(s.root, "environments", "*", "*")); len(l) > 0 {
		t.Fatalf("half-installed: %v", l)
	}
	assertNothingHalfway(t, s)
	stall.Store(false)
	if _, err := s.Ensure(t.Context(), "debian:12-base"); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

// A registry that wants credentials: refused before any work without
// them, pushed and pulled with those of the Docker config.
func TestPublishWithCredentials(t *testing.T) {
	agent := writeStaticELF(t)
	host := testutil.Registry(t, "team", "s3cret")
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	pub := publisher(t, agent)
	pub.opts.InsecureRegistries = []string{host}
	ref := host + "/pyro/debian:12-base"
	_, err := pub.Push(t.Context(), "debian:12-base", ref)
	if errdefs.CodeOf(err) != errdefs.CodeRegistryAuth || !strings.Contains(err.Error(), "docker login "+host) {
		t.Fatalf("no credentials: %v", err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("team:s3cret"))
	cfg := `{"auths":{"` + host + `":{"auth":"` + auth + `"}}}`
	if err := os.WriteFile(filepath.Join(os.Getenv("DOCKER_CONFIG"), "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Push(t.Context(), "debian:12-base", ref); err != nil {
		t.Fatal(err)
	}
	s := puller(t, agent, host)
	if _, err := s.Ensure(t.Context(), "debian:12-base"); err != nil {
		t.Fatal(err)
	}
}
