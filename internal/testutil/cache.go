package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CacheWithEnvs is CacheWithKernel plus the shared cache's installs and
// base tarballs of the named catalog environments, hard-linked (never
// written: images are read-only, a re-pack writes a new version): tests
// that make environments of their own keep them out of the shared cache.
func CacheWithEnvs(t testing.TB, names ...string) string {
	t.Helper()
	dir := CacheWithKernel(t)
	shared := sharedCache()
	var files []string
	files = append(files, mustGlob(t, filepath.Join(shared, "bases", "*"))...)
	for _, n := range names {
		slug := strings.NewReplacer(":", "-", "_", "-").Replace(n)
		files = append(files, mustGlob(t, filepath.Join(shared, "environments", slug, "*", "*"))...)
	}
	for _, src := range files {
		rel, _ := filepath.Rel(shared, src)
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(src, dst); err != nil {
			t.Fatalf("linking %s from the shared cache: %v", rel, err)
		}
	}
	return dir
}

func sharedCache() string {
	if d := os.Getenv("PYRO_CACHE_DIR"); d != "" {
		return d
	}
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "pyro")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "pyro")
}

func mustGlob(t testing.TB, pattern string) []string {
	t.Helper()
	m, _ := filepath.Glob(pattern)
	if len(m) == 0 {
		t.Fatalf("nothing matches %s in the shared cache: run \"pyro env pull debian:12\" (or make test) first", pattern)
	}
	return m
}
