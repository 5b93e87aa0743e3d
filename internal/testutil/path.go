package testutil

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// PathWithout sets PATH, for the rest of the test, to one directory of
// links to every program on the current PATH except the named ones: a host
// without mmdebstrap or a compiler, say, while QEMU stays.
func PathWithout(t testing.TB, drop ...string) {
	t.Helper()
	dir := t.TempDir()
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			name := e.Name()
			if slices.Contains(drop, name) || strings.HasPrefix(name, ".") {
				continue
			}
			link := filepath.Join(dir, name)
			if _, err := os.Lstat(link); err == nil {
				continue // an earlier PATH entry wins
			}
			if err := os.Symlink(filepath.Join(d, name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Setenv("PATH", dir)
}

// LocalBuilders are the programs pyro builds environments and the guest
// kernel with; PathWithout(t, LocalBuilders...) makes a host that can only
// pull them.
var LocalBuilders = []string{"mmdebstrap", "debootstrap", "dpkg-query", "make", "gcc", "cc"}
