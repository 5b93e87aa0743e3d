package testutil

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Registry serves an in-memory OCI registry on 127.0.0.1 (plain HTTP) for
// the test's life and returns its host:port. With user set, every request
// needs that basic-auth user and password.
func Registry(t testing.TB, user, password string) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if user != "" {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="pyro-test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			inner.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// Image makes a linux/amd64 image from layer tarballs (bottom first) with
// the given config Env.
func Image(t testing.TB, env []string, layers ...*bytes.Buffer) v1.Image {
	t.Helper()
	img := empty.Image
	for _, l := range layers {
		data := l.Bytes()
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = env
	cf.Config.WorkingDir = "/srv"
	cf.Config.Cmd = []string{"/bin/sh"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// Push writes img to ref on a plain-HTTP test registry.
func Push(t testing.TB, ref string, img v1.Image, opts ...remote.Option) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatal(err)
	}
}

// BusyboxLayer is a layer with Debian's static busybox as /bin/busybox and
// /bin/sh, plus the few applet links tests use (busybox-static must be
// installed: scripts/install-host-deps.sh does it).
func BusyboxLayer(t testing.TB) *bytes.Buffer {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is needed (scripts/install-host-deps.sh installs it): %v", err)
	}
	entries := []TarEntry{
		{Header: tar.Header{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o755}},
		{Header: tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755}, Body: string(bb)},
	}
	for _, applet := range []string{"sh", "ls", "cat", "echo", "env", "mkdir", "rm", "find", "sort", "stat", "readlink", "test", "sleep", "id", "wc", "head", "tr", "sed", "printf", "true", "false", "touch", "uname"} {
		entries = append(entries, TarEntry{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777}})
	}
	return Tar(t, entries...)
}

// CacheWithKernel returns a fresh cache directory that shares (hard links,
// else copies) the guest kernels and the accelerator verdict of the shared
// cache, so a test can pull and convert images, boot and prune them, and
// leave nothing behind in the shared cache. The shared cache must already
// hold a kernel (make test's env pull builds it).
func CacheWithKernel(t testing.TB) string {
	t.Helper()
	shared := os.Getenv("PYRO_CACHE_DIR")
	if shared == "" {
		if x := os.Getenv("XDG_CACHE_HOME"); x != "" && filepath.IsAbs(x) {
			shared = filepath.Join(x, "pyro")
		} else if home, err := os.UserHomeDir(); err == nil {
			shared = filepath.Join(home, ".cache", "pyro")
		}
	}
	dir := t.TempDir()
	kernels, _ := filepath.Glob(filepath.Join(shared, "kernels", "*", "*"))
	if len(kernels) == 0 {
		t.Fatalf("no guest kernel in %s: run \"pyro env pull debian:12\" (or make test) first", shared)
	}
	for _, src := range append(kernels, filepath.Join(shared, "accel.json")) {
		rel, _ := filepath.Rel(shared, src)
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if os.Link(src, dst) == nil {
			continue
		}
		if b, err := os.ReadFile(src); err == nil {
			if err := os.WriteFile(dst, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}
