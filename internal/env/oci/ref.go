// Package oci is the OCI image source of pyro environments: it parses image
// references, resolves them to one linux/amd64 image (registry, OCI layout
// directory or docker-archive tarball) through go-containerregistry, and
// fetches layer blobs into a digest-addressed store, checking every byte
// against its digest. Turning the layers into a root filesystem is
// internal/env/flatten's job; making the bootable image is internal/env's.
package oci

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// Source kinds of a reference.
const (
	KindRegistry = "registry"
	KindLayout   = "oci-layout"
	KindArchive  = "docker-archive"
)

const (
	layoutPrefix  = "oci-layout:"
	archivePrefix = "docker-archive:"
	// dockerHub is how references to Docker Hub are shown and matched
	// (go-containerregistry says index.docker.io).
	dockerHub = "docker.io"
)

// Ref is a parsed environment reference.
type Ref struct {
	Kind string
	// Name is the normalized reference: "docker.io/library/python:3.12-slim",
	// "localhost:5000/team/img@sha256:...", "oci-layout:/abs/dir:tag",
	// "docker-archive:/abs/file.tar". Caches and --allow-pull match it.
	Name string
	// Registry is the registry host of a registry reference ("docker.io").
	Registry string
	// Digest is set when the reference pins a manifest digest.
	Digest string

	ref  name.Reference // registry references
	path string         // layout directory or archive file
	tag  string         // layout tag, may be empty
}

// Parse parses an image reference, an oci-layout:DIR[:TAG] or a
// docker-archive:FILE. Docker Hub short names are normalized as docker does
// ("python" is docker.io/library/python:latest).
func Parse(s string) (Ref, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, layoutPrefix):
		return parseLayout(strings.TrimPrefix(s, layoutPrefix))
	case strings.HasPrefix(s, archivePrefix):
		p := strings.TrimPrefix(s, archivePrefix)
		if p == "" {
			return Ref{}, invalid(s, "names no file")
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return Ref{}, invalid(s, err.Error())
		}
		return Ref{Kind: KindArchive, Name: archivePrefix + abs, path: abs}, nil
	}
	r, err := name.ParseReference(s)
	if err != nil {
		return Ref{}, invalid(s, "is neither a catalog name nor an image reference ("+err.Error()+")")
	}
	reg := r.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = dockerHub
	}
	ref := Ref{Kind: KindRegistry, Registry: reg, ref: r}
	repo := reg + "/" + r.Context().RepositoryStr()
	if d, ok := r.(name.Digest); ok {
		ref.Digest = d.DigestStr()
		ref.Name = repo + "@" + ref.Digest
	} else {
		ref.Name = repo + ":" + r.Identifier()
	}
	return ref, nil
}

// parseLayout splits DIR[:TAG]: a path that exists as a directory is all
// DIR (paths may contain ':'), else the part after the last ':' is the tag.
func parseLayout(p string) (Ref, error) {
	if p == "" {
		return Ref{}, invalid(layoutPrefix, "names no directory")
	}
	dir, tag := p, ""
	if st, err := os.Stat(p); err != nil || !st.IsDir() {
		if i := strings.LastIndex(p, ":"); i > 0 && !strings.Contains(p[i+1:], "/") {
			dir, tag = p[:i], p[i+1:]
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Ref{}, invalid(layoutPrefix+p, err.Error())
	}
	n := layoutPrefix + abs
	if tag != "" {
		n += ":" + tag
	}
	return Ref{Kind: KindLayout, Name: n, path: abs, tag: tag}, nil
}

// Local reports whether the reference names files on this host (no network).
func (r Ref) Local() bool { return r.Kind != KindRegistry }

func invalid(s, why string) error {
	return errdefs.InvalidArgument("environment",
		"%q %s: use a catalog name, an image reference such as python:3.12-slim or registry.example.com/team/img:1, oci-layout:DIR[:TAG] or docker-archive:FILE.tar", s, why).
		WithNext(" (%s for the catalog)", "pyro env list", "vm_list_environments")
}

// Path is the host directory (oci-layout) or file (docker-archive) a local
// reference names; "" for a registry reference.
func (r Ref) Path() string { return r.path }
