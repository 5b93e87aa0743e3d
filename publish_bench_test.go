package pyro_test

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/testutil"
)

// sharedCache is the cache the test run shares (PYRO_CACHE_DIR or the default).
func sharedCache(b testing.TB) string {
	c, err := pyro.New()
	if err != nil {
		b.Fatal(err)
	}
	return c.CacheDir()
}

// cachedBase finds the base tarball of catalog entry name in the shared cache.
func cachedBase(b testing.TB, name string) (tarPath, jsonPath string) {
	b.Helper()
	recs, _ := filepath.Glob(filepath.Join(sharedCache(b), "bases", "*.json"))
	for _, r := range recs {
		var rec struct {
			Name string `json:"name"`
		}
		if data, err := os.ReadFile(r); err == nil && json.Unmarshal(data, &rec) == nil && rec.Name == name {
			return strings.TrimSuffix(r, ".json") + ".tar", r
		}
	}
	b.Skipf("no cached base tarball of %s (pyro env pull %s makes one)", name, name)
	return "", ""
}

// Pull + convert throughput of a ~200 MB OCI image (the debian:12 root
// filesystem plus 32 MiB of incompressible data, gzip layers) from a
// registry on 127.0.0.1, into a fresh cache each time.
//
//	PYRO_BIN_DIR=$PWD/bin go test -run '^$' -bench BenchmarkPullConvert -benchtime 2x .
func BenchmarkPullConvert(b *testing.B) {
	testutil.RequiresVM(b)
	bin := testutil.Binaries(b)
	host := testutil.Registry(b, "", "")
	basePath, _ := cachedBase(b, "debian:12")
	l1, err := tarball.LayerFromFile(basePath)
	if err != nil {
		b.Fatal(err)
	}
	noise := make([]byte, 32<<20)
	rand.Read(noise)
	l2 := testutil.Tar(b, testutil.TarEntry{Header: tar.Header{Typeflag: tar.TypeReg, Name: "opt/noise.bin", Mode: 0o644}, Body: string(noise)})
	data := l2.Bytes()
	l2l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		b.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l1, l2l)
	if err != nil {
		b.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		b.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		b.Fatal(err)
	}
	ref := host + "/bench/debian:1"
	testutil.Push(b, ref, img)
	st, _ := os.Stat(basePath)
	uncompressed := st.Size() + int64(l2.Len())
	var compressed int64
	layers, _ := img.Layers()
	for _, l := range layers {
		n, _ := l.Size()
		compressed += n
	}

	// CPU seconds too (this process, and mkfs.ext4 and tar as children):
	// on a shared host the wall clock mostly measures the neighbours.
	var total, cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := pyro.New(pyro.WithStateDir(b.TempDir()), pyro.WithCacheDir(testutil.CacheWithKernel(b)),
			pyro.WithAgentPath(bin+"/pyro-agent"), pyro.WithInsecureRegistries(host), pyro.WithEnvRegistry(""))
		if err != nil {
			b.Fatal(err)
		}
		start, cpu0 := time.Now(), cpuTime()
		if _, err := c.PullEnvironment(b.Context(), pyro.PullEnvironmentRequest{Environment: ref}); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		cpu += cpuTime() - cpu0
	}
	secs := total.Seconds() / float64(b.N)
	b.ReportMetric(float64(uncompressed)/1e6/(cpu.Seconds()/float64(b.N)), "MB/cpu-s")
	b.ReportMetric(float64(uncompressed)/1e6, "image-MB")
	b.ReportMetric(float64(compressed)/1e6, "compressed-MB")
	b.ReportMetric(float64(uncompressed)/1e6/secs, "MB/s")
	b.ReportMetric(float64(compressed)/1e6/secs, "compressed-MB/s")
}

// Time to the first `uname -r` answer on a host with an empty cache:
// debian:12-base pulled as a published pyro environment, against built
// locally. The local side keeps the guest kernel and the mmdebstrap base
// tarball of the shared cache (what a Debian host has after its first
// build), so it is the cheapest local build there is: image re-pack only;
// a fresh host adds the kernel compile and mmdebstrap on top.
//
//	PYRO_BIN_DIR=$PWD/bin go test -run '^$' -bench BenchmarkFirstRun -benchtime 1x .
func BenchmarkFirstRun(b *testing.B) {
	host, _ := publishBase(b)
	bin := testutil.Binaries(b)
	baseTar, baseJSON := cachedBase(b, "debian:12-base")
	firstRun := func(cache, registry string) time.Duration {
		c, err := pyro.New(pyro.WithStateDir(b.TempDir()), pyro.WithCacheDir(cache), pyro.WithAgentPath(bin+"/pyro-agent"),
			pyro.WithInsecureRegistries(host), pyro.WithEnvRegistry(registry))
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		res, err := c.Run(b.Context(), pyro.RunRequest{Environment: "debian:12-base", Command: "uname -r", TimeoutSeconds: 300})
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("run: %v %+v", err, res)
		}
		return time.Since(start)
	}
	var published, local time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Both caches get the shared accelerator verdict, neither a probe boot.
		pubCache := b.TempDir()
		if err := os.Link(filepath.Join(sharedCache(b), "accel.json"), filepath.Join(pubCache, "accel.json")); err != nil {
			b.Fatal(err)
		}
		published += firstRun(pubCache, host+"/pyro")
		cache := testutil.CacheWithKernel(b)
		for _, f := range []string{baseTar, baseJSON} {
			dst := filepath.Join(cache, "bases", filepath.Base(f))
			os.MkdirAll(filepath.Dir(dst), 0o755)
			if err := os.Link(f, dst); err != nil {
				b.Fatal(err)
			}
		}
		local += firstRun(cache, "")
	}
	n := float64(b.N)
	b.ReportMetric(published.Seconds()/n, "published-s")
	b.ReportMetric(local.Seconds()/n, "local-repack-s")
	b.ReportMetric(local.Seconds()/published.Seconds(), "local/published")
}

// cpuTime is the user and system time of this process and its waited-for
// children so far.
func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	var d time.Duration
	for _, tv := range []syscall.Timeval{self.Utime, self.Stime, kids.Utime, kids.Stime} {
		d += time.Duration(tv.Nano())
	}
	return d
}
