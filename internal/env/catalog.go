package env

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"sync"

	"github.com/pyrovm/pyro/internal/errdefs"
)

const (
	debianSuite = "bookworm"
	debianMajor = "12"
	// recipeVersion is hashed into every base tarball identity; bump it when
	// the debootstrap recipe changes in a way the argument list does not show.
	recipeVersion = "1"
)

// catalogEntry is one environment pyro knows how to build.
type catalogEntry struct {
	Name        string
	Description string
	Include     []string // packages added to mmdebstrap's minbase variant
}

var catalog = []catalogEntry{
	{
		Name:        "debian:12",
		Description: "Debian 12 (bookworm) with bash, coreutils, git and ca-certificates",
		Include:     []string{"bash", "coreutils", "git", "ca-certificates"},
	},
	{
		Name:        "debian:12-base",
		Description: "Debian 12 (bookworm) minimal shell tools (minbase plus procps)",
		Include:     []string{"bash", "coreutils", "procps"},
	},
	{
		Name:        "debian:12-build",
		Description: "Debian 12 (bookworm) with git, build-essential, python3, make, curl, procps (ps, top) and vim-tiny",
		Include:     []string{"git", "ca-certificates", "build-essential", "python3", "make", "curl", "procps", "vim-tiny"},
	},
}

// nameRE is deliberately narrow: lower-case words joined by '.', '_' or '-',
// one optional ':' tag. No '/', no "..", nothing that can walk a path.
var nameRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[a-z0-9]+(?:[._-][a-z0-9]+)*)?$`)
})

const maxNameLen = 64

// validName reports whether name is syntactically acceptable.
func validName(name string) bool {
	return len(name) <= maxNameLen && nameRE().MatchString(name)
}

// lookup returns the catalog entry for name or a typed error.
func lookup(name string) (catalogEntry, error) {
	if !validName(name) {
		return catalogEntry{}, errdefs.InvalidArgument("environment",
			"invalid environment name %q: use a catalog name such as %q", name, catalog[0].Name).
			WithNext(" (%s)", "pyro env list", "vm_list_environments")
	}
	for _, e := range catalog {
		if e.Name == name {
			return e, nil
		}
	}
	return catalogEntry{}, errdefs.New(errdefs.ErrNotFound, errdefs.CodeEnvironmentMissing, "unknown environment %q", name).
		WithNext(": %s to see the environments", "pyro env list", "vm_list_environments")
}

// slug is the directory-safe form of a (valid) name: "debian:12-base" -> "debian-12-base".
func slug(name string) string {
	return strings.NewReplacer(":", "-", "_", "-").Replace(name)
}

// entryForSlug maps a directory name back to its catalog entry.
func entryForSlug(s string) (catalogEntry, bool) {
	for _, e := range catalog {
		if slug(e.Name) == s {
			return e, true
		}
	}
	return catalogEntry{}, false
}

// recipeHash identifies the base tarball of an entry: suite, variant,
// packages and every mmdebstrap option (but not the mirror).
func (e catalogEntry) recipeHash() string {
	h := sha256.New()
	h.Write([]byte("recipe=" + recipeVersion + "\n"))
	for _, a := range e.mmdebstrapArgs() {
		h.Write([]byte(a + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// baseKey names the cached base tarball: "<slug>-<recipe hash>".
func (e catalogEntry) baseKey() string {
	return slug(e.Name) + "-" + e.recipeHash()
}

// errNotInstalled is Get's answer for a known environment without a usable install.
func errNotInstalled(name, why string) error {
	return errdefs.New(errdefs.ErrNotFound, errdefs.CodeEnvironmentMissing, "environment %q %s", name, why).
		WithNext(": %s", "pyro env pull "+name, "")
}
