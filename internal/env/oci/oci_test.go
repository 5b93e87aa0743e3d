package oci

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/testutil"
)

func smallImage(t *testing.T) v1.Image {
	t.Helper()
	return testutil.Image(t, []string{"PATH=/opt/bin:/bin", "FOO=bar"},
		testutil.Tar(t, testutil.TarEntry{Header: tar.Header{Typeflag: tar.TypeReg, Name: "bin/sh", Mode: 0o755}, Body: "#!"}))
}

func TestParseNormalizes(t *testing.T) {
	cases := map[string]string{
		"python:3.12-slim":                 "docker.io/library/python:3.12-slim",
		"docker.io/library/node:22":        "docker.io/library/node:22",
		"alpine":                           "docker.io/library/alpine:latest",
		"localhost:5000/team/img:1":        "localhost:5000/team/img:1",
		"ghcr.io/o/i@sha256:" + hex64("a"): "ghcr.io/o/i@sha256:" + hex64("a"),
		"docker-archive:/tmp/x.tar":        "docker-archive:/tmp/x.tar",
		"oci-layout:/nonexistent/dir:v1":   "oci-layout:/nonexistent/dir:v1",
		"oci-layout:/nonexistent/dir":      "oci-layout:/nonexistent/dir",
	}
	for in, want := range cases {
		r, err := Parse(in)
		if err != nil || r.Name != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, r.Name, err, want)
		}
	}
	for _, bad := range []string{"", "UPPER/Case:1", "a b", "oci-layout:", "docker-archive:"} {
		if _, err := Parse(bad); errdefs.CodeOf(err) != errdefs.CodeInvalidArgument {
			t.Errorf("Parse(%q): %v, want invalid_argument", bad, err)
		}
	}
}

func hex64(c string) string { return strings.Repeat(c, 64) }

func resolve(t *testing.T, ref string, opts Options) (*Image, error) {
	t.Helper()
	r, err := Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	return Resolve(t.Context(), r, opts)
}

func TestResolveAndFetchFromRegistry(t *testing.T) {
	host := testutil.Registry(t, "", "")
	img := smallImage(t)
	testutil.Push(t, host+"/team/img:1", img)
	opts := Options{Insecure: []string{host}}
	im, err := resolve(t, host+"/team/img:1", opts)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if im.Digest != want.String() || len(im.Layers) != 1 || im.Config.Env[1] != "FOO=bar" || im.Config.WorkingDir != "/srv" {
		t.Fatalf("resolved %+v", im)
	}
	blobs := Blobs{Dir: t.TempDir()}
	var seen int64
	p, err := blobs.Fetch(t.Context(), im, im.Layers[0], func(n int64) { seen = n })
	if err != nil || seen != im.Layers[0].Size {
		t.Fatalf("fetch: %v (progress %d of %d)", err, seen, im.Layers[0].Size)
	}
	rc, err := Uncompressed(p)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	hdr, err := tar.NewReader(rc).Next()
	if err != nil || hdr.Name != "bin/sh" {
		t.Fatalf("layer content: %v %v", hdr, err)
	}

	// The same registry, not named insecure: plain HTTP is refused, even on loopback.
	if _, err := resolve(t, host+"/team/img:1", Options{}); errdefs.CodeOf(err) != errdefs.CodeImagePull || !strings.Contains(err.Error(), "--insecure-registry") {
		t.Errorf("unnamed plain-HTTP registry: %v", err)
	}
	if _, err := resolve(t, host+"/team/nope:1", opts); errdefs.CodeOf(err) != errdefs.CodeEnvironmentMissing {
		t.Errorf("missing image: %v", err)
	}
}

func TestResolveIndexWithoutAmd64ListsPlatforms(t *testing.T) {
	host := testutil.Registry(t, "", "")
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: smallImage(t), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		mutate.IndexAddendum{Add: smallImage(t), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}})
	r, _ := name.ParseReference(host+"/multi:1", name.Insecure)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	_, err := resolve(t, host+"/multi:1", Options{Insecure: []string{host}})
	if errdefs.CodeOf(err) != errdefs.CodeImagePlatform || !strings.Contains(err.Error(), "linux/arm64/v8, linux/s390x") {
		t.Fatalf("got %v", err)
	}
	// With an amd64 child, that one is picked.
	idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: smallImage(t), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	im, err := resolve(t, host+"/multi:1", Options{Insecure: []string{host}})
	if err != nil || len(im.Layers) != 1 {
		t.Fatalf("amd64 child: %v", err)
	}
}

func TestFetchRejectsBytesNotMatchingTheDigest(t *testing.T) {
	reg := registry.New()
	img := smallImage(t)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+ld.String()) {
			rec := httptest.NewRecorder()
			reg.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			body[len(body)-1] ^= 0xff // same length, other bytes
			w.WriteHeader(rec.Code)
			w.Write(body)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	testutil.Push(t, host+"/x:1", img)
	im, err := resolve(t, host+"/x:1", Options{Insecure: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	blobs := Blobs{Dir: t.TempDir()}
	if _, err := blobs.Fetch(t.Context(), im, im.Layers[0], nil); errdefs.CodeOf(err) != errdefs.CodeImageCorrupt {
		t.Fatalf("got %v, want %s", err, errdefs.CodeImageCorrupt)
	}
	if blobs.Has(im.Layers[0]) {
		t.Fatal("a corrupt blob was stored")
	}
	left, _ := filepath.Glob(filepath.Join(blobs.Dir, "sha256", "*"))
	if len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}

func TestResolveWithDockerConfigCredentials(t *testing.T) {
	host := testutil.Registry(t, "agent", "s3cret")
	testutil.Push(t, host+"/private:1", smallImage(t), remote.WithAuth(&authn.Basic{Username: "agent", Password: "s3cret"}))
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, ".docker"))
	opts := Options{Insecure: []string{host}}
	if _, err := resolve(t, host+"/private:1", opts); errdefs.CodeOf(err) != errdefs.CodeRegistryAuth || !strings.Contains(err.Error(), "docker login "+host) {
		t.Fatalf("without credentials: %v", err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("agent:s3cret"))
	os.MkdirAll(filepath.Join(home, ".docker"), 0o700)
	cfg := `{"auths":{"` + host + `":{"auth":"` + auth + `"}}}`
	if err := os.WriteFile(filepath.Join(home, ".docker", "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	im, err := resolve(t, host+"/private:1", opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (Blobs{Dir: t.TempDir()}).Fetch(t.Context(), im, im.Layers[0], nil); err != nil {
		t.Fatal(err)
	}
}

func TestResolveLayoutAndArchive(t *testing.T) {
	img := smallImage(t)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}
	im, err := resolve(t, "oci-layout:"+dir+":v1", Options{})
	want, _ := img.Digest()
	if err != nil || im.Digest != want.String() {
		t.Fatalf("layout: %v %v", im, err)
	}
	if _, err := resolve(t, "oci-layout:"+dir+":v2", Options{}); errdefs.CodeOf(err) != errdefs.CodeEnvironmentMissing {
		t.Errorf("missing tag: %v", err)
	}
	if im, err = resolve(t, "oci-layout:"+dir, Options{}); err != nil || im.Digest != want.String() {
		t.Errorf("single-image layout without a tag: %v", err)
	}

	archive := filepath.Join(t.TempDir(), "img.tar")
	tag, _ := name.NewTag("example/img:1")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		t.Fatal(err)
	}
	im, err = resolve(t, "docker-archive:"+archive, Options{})
	cfgName, _ := img.ConfigName()
	if err != nil || im.Digest != cfgName.String() {
		t.Fatalf("archive: %v %v", im, err)
	}
	blobs := Blobs{Dir: t.TempDir()}
	bp, err := blobs.Fetch(t.Context(), im, im.Layers[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := Uncompressed(bp)
	defer rc.Close()
	data, _ := io.ReadAll(rc)
	if !bytes.Contains(data, []byte("bin/sh")) {
		t.Fatal("archive layer content lost")
	}
}
