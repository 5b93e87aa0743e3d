package env

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pyrovm/pyro/internal/env/oci"
	"github.com/pyrovm/pyro/internal/fsutil"
)

const (
	manifestFile          = "manifest.json"
	manifestSchemaVersion = 1
)

// Manifest describes one installed environment version. On disk the paths
// are relative to the cache root (the cache can move); in memory, as
// returned by this package, they are absolute.
type Manifest struct {
	SchemaVersion int        `json:"schema_version"`
	Name          string     `json:"name"`
	Version       string     `json:"version"`
	Description   string     `json:"description"`
	CreatedAt     time.Time  `json:"created_at"`
	Kernel        KernelInfo `json:"kernel"`
	Rootfs        RootfsInfo `json:"rootfs"`
	AgentSHA256   string     `json:"agent_sha256"`
	// RecipeHash identifies the package recipe (catalog entry + mmdebstrap
	// options) the image was built from; BaseSHA256 the exact base tarball.
	RecipeHash string   `json:"recipe_hash"`
	BaseSHA256 string   `json:"base_sha256"`
	Packages   []string `json:"packages"` // "name=version", sorted
	// ImageRevision is pyro's own layer on top of the packages (agent path,
	// config files, tuning); an install of an older revision is rebuilt.
	ImageRevision int `json:"image_revision"`

	// Source says where the root filesystem came from: "debian" (the
	// catalog, built with mmdebstrap) or "oci" (an OCI image). Manifests
	// written before sources existed have none: they are "debian".
	Source string `json:"source,omitempty"`
	// Reference is the normalized image reference an OCI environment was
	// pulled as, Digest its manifest digest (the config digest for a
	// docker-archive), Image its layers and config.
	Reference string     `json:"reference,omitempty"`
	Digest    string     `json:"digest,omitempty"`
	Image     *ImageInfo `json:"image,omitempty"`
	// Published is set when this environment was installed from a pyro
	// environment artifact (env push on another host) instead of built here.
	Published *PublishedInfo `json:"published,omitempty"`
	// Build is the definition and base of a custom environment (source "build").
	Build *BuildInfo `json:"build,omitempty"`
}

// Sources of a manifest.
const (
	SourceDebian = "debian"
	SourceOCI    = "oci"
	// SourceArtifact: a pyro environment artifact pulled by reference
	// (a catalog name pulled from PYRO_ENV_REGISTRY keeps "debian").
	SourceArtifact = "artifact"
)

// ImageInfo is what an OCI environment keeps of its image.
type ImageInfo struct {
	Platform string      `json:"platform"`
	Layers   []oci.Layer `json:"layers"`
	Config   oci.Config  `json:"config"`
	Skipped  []string    `json:"skipped,omitempty"` // layer entries not created (device nodes)
}

// imageRevision is bumped whenever customizeTree changes what it writes.
const imageRevision = 2

// RootfsInfo describes the ext4 root filesystem image.
type RootfsInfo struct {
	Path      string `json:"path"`
	SHA256    string `json:"sha256"`
	Size      int64  `json:"size"`       // apparent size
	DiskUsage int64  `json:"disk_usage"` // allocated bytes (the file is sparse)
}

// writeManifest writes dir/manifest.json atomically, paths made relative to root.
func writeManifest(root, dir string, m *Manifest) error {
	c := *m
	var err error
	if c.Kernel.Path, err = relPath(root, m.Kernel.Path); err != nil {
		return err
	}
	if c.Rootfs.Path, err = relPath(root, m.Rootfs.Path); err != nil {
		return err
	}
	return fsutil.WriteJSONAtomic(filepath.Join(dir, manifestFile), &c, 0o644)
}

// readManifest loads dir/manifest.json and resolves its paths under root.
func readManifest(root, dir string) (*Manifest, error) {
	var m Manifest
	if err := readJSON(filepath.Join(dir, manifestFile), &m); err != nil {
		return nil, err
	}
	if m.SchemaVersion != manifestSchemaVersion {
		return nil, fmt.Errorf("%s: unsupported schema_version %d", dir, m.SchemaVersion)
	}
	for _, p := range []*string{&m.Kernel.Path, &m.Rootfs.Path} {
		if !filepath.IsLocal(*p) {
			return nil, fmt.Errorf("%s: path %q escapes the cache", dir, *p)
		}
		*p = filepath.Join(root, *p)
	}
	return &m, nil
}

func relPath(root, p string) (string, error) {
	rel, err := filepath.Rel(root, p)
	if err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("path %s is outside the cache %s", p, root)
	}
	return rel, nil
}

// Problems found by checkFiles; errKernelFiles is kept apart because the
// kernel is shared and may be mid-repair by another environment's pull.
var (
	errRootfsFiles = errors.New("root filesystem image missing or of the wrong size")
	errKernelFiles = errors.New("guest kernel missing or of the wrong size")
)

// checkFiles is the cheap validity check used on every Get: both files
// exist with the sizes the manifest records.
func (m *Manifest) checkFiles() error {
	if fileSize(m.Rootfs.Path) != m.Rootfs.Size || m.Rootfs.Size <= 0 {
		return errRootfsFiles
	}
	if fileSize(m.Kernel.Path) != m.Kernel.Size || m.Kernel.Size <= 0 {
		return errKernelFiles
	}
	return nil
}

// install is one version directory under environments/<slug>/.
type install struct {
	dir      string
	version  string
	manifest *Manifest // nil when unreadable (half-built or damaged)
	err      error     // nil when the cheap check passed
}

// scanInstalls reads every version directory of entry e, newest first.
func (s *Store) scanInstalls(e catalogEntry) []install {
	base := filepath.Join(s.root, "environments", slug(e.Name))
	entries, err := os.ReadDir(base)
	if err != nil {
		return nil
	}
	var out []install
	for _, de := range entries {
		if !de.IsDir() || !validVersion(de.Name()) {
			continue
		}
		in := install{dir: filepath.Join(base, de.Name()), version: de.Name()}
		m, err := readManifest(s.root, in.dir)
		switch {
		case err != nil:
			in.err = fmt.Errorf("no valid manifest: %w", err)
		case m.Name != e.Name || m.Version != de.Name():
			in.err = fmt.Errorf("manifest names %s %s", m.Name, m.Version)
		default:
			in.manifest = m
			in.err = m.checkFiles()
		}
		out = append(out, in)
	}
	// Newest first by creation time; unreadable ones last.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && newer(out[j], out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func newer(a, b install) bool {
	if a.manifest == nil || b.manifest == nil {
		return a.manifest != nil && b.manifest == nil
	}
	if !a.manifest.CreatedAt.Equal(b.manifest.CreatedAt) {
		return a.manifest.CreatedAt.After(b.manifest.CreatedAt)
	}
	return a.version > b.version
}

func (in install) environment() *Environment {
	return &Environment{Manifest: in.manifest, Dir: in.dir, KernelPath: in.manifest.Kernel.Path, RootfsPath: in.manifest.Rootfs.Path}
}
