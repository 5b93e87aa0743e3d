package oci

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// The one platform pyro's guests run.
const (
	wantOS   = "linux"
	wantArch = "amd64"
	// Platform is how the platform is shown.
	Platform = wantOS + "/" + wantArch
)

// InsecureEnv lists registries (host[:port], comma separated) that may be
// reached over plain HTTP, as --insecure-registry does.
const InsecureEnv = "PYRO_INSECURE_REGISTRIES"

// Options steer resolving and fetching.
type Options struct {
	// Insecure lists registry hosts (host[:port]) allowed over plain HTTP;
	// no other registry ever is, loopback ones included.
	Insecure []string
	// Keychain gives credentials; nil means the Docker config
	// (authn.DefaultKeychain: $DOCKER_CONFIG or ~/.docker/config.json).
	Keychain authn.Keychain
}

// InsecureFromEnv returns the registries named in PYRO_INSECURE_REGISTRIES.
func InsecureFromEnv() []string {
	var out []string
	for _, h := range strings.Split(os.Getenv(InsecureEnv), ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	return out
}

func (o Options) insecure(host string) bool {
	for _, h := range o.Insecure {
		if strings.EqualFold(h, host) || (h == dockerHub && host == name.DefaultRegistry) {
			return true
		}
	}
	return false
}

// Config is what pyro keeps of the image config.
type Config struct {
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	User       string   `json:"user,omitempty"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
}

// Layer is one layer as stored in the blob store: Digest names the stored
// bytes (the compressed blob from a registry or layout; the uncompressed
// tar, i.e. the diff ID, from a docker-archive).
type Layer struct {
	Digest    string `json:"digest"`
	Size      int64  `json:"size"` // bytes stored; -1 when unknown before fetching
	MediaType string `json:"media_type,omitempty"`

	layer        v1.Layer
	uncompressed bool
}

// Image is one resolved linux/amd64 image.
type Image struct {
	Ref Ref
	// Digest identifies the image: the manifest digest, or for a
	// docker-archive (which has no manifest digest) the config digest,
	// i.e. docker's image ID.
	Digest string
	Config Config
	Layers []Layer
}

// Resolve finds the linux/amd64 image ref names. Only manifests and the
// config are read; layers are fetched later, by Fetch.
func Resolve(ctx context.Context, ref Ref, opts Options) (*Image, error) {
	var (
		img    v1.Image
		digest string
		err    error
	)
	switch ref.Kind {
	case KindRegistry:
		img, digest, err = resolveRemote(ctx, ref, opts)
	case KindLayout:
		img, digest, err = resolveLayout(ref)
	case KindArchive:
		img, digest, err = resolveArchive(ref)
	default:
		return nil, fmt.Errorf("unknown reference kind %q", ref.Kind)
	}
	if err != nil {
		return nil, mapErr(ctx, ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, mapErr(ctx, ref, err)
	}
	if (cf.OS != "" && cf.OS != wantOS) || (cf.Architecture != "" && cf.Architecture != wantArch) {
		return nil, errPlatform(ref, []string{cf.OS + "/" + cf.Architecture})
	}
	im := &Image{Ref: ref, Digest: digest, Config: Config{
		Env: cf.Config.Env, WorkingDir: cf.Config.WorkingDir, User: cf.Config.User,
		Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd,
	}}
	layers, err := img.Layers()
	if err != nil {
		return nil, mapErr(ctx, ref, err)
	}
	if ref.Kind == KindArchive && len(layers) != len(cf.RootFS.DiffIDs) {
		return nil, corruptf(ref, "the config lists %d layers, the archive %d", len(cf.RootFS.DiffIDs), len(layers))
	}
	for i, l := range layers {
		L := Layer{layer: l, Size: -1}
		if ref.Kind == KindArchive {
			// Hashing gzip output to get a "compressed digest" would cost a
			// full compression: archives are stored by diff ID.
			L.Digest, L.uncompressed = cf.RootFS.DiffIDs[i].String(), true
		} else {
			d, err := l.Digest()
			if err != nil {
				return nil, mapErr(ctx, ref, err)
			}
			L.Digest = d.String()
			if L.Size, err = l.Size(); err != nil {
				return nil, mapErr(ctx, ref, err)
			}
			if mt, err := l.MediaType(); err == nil {
				L.MediaType = string(mt)
			}
		}
		im.Layers = append(im.Layers, L)
	}
	return im, nil
}

func resolveRemote(ctx context.Context, ref Ref, opts Options) (v1.Image, string, error) {
	r := ref.ref
	if opts.insecure(r.Context().RegistryStr()) {
		var err error
		if r, err = name.ParseReference(r.String(), name.Insecure); err != nil {
			return nil, "", err
		}
	}
	desc, err := remote.Get(r, remoteOptions(ctx, opts)...)
	if err != nil {
		return nil, "", err
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, "", err
		}
		return fromIndex(ref, idx)
	}
	img, err := desc.Image()
	return img, desc.Digest.String(), err
}

func remoteOptions(ctx context.Context, opts Options) []remote.Option {
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithTransport(&plainHTTPGuard{base: remote.DefaultTransport, opts: opts}),
		remote.WithUserAgent("pyro"),
	}
}

// fromIndex picks linux/amd64 from an index, or says what the index has.
func fromIndex(ref Ref, idx v1.ImageIndex) (v1.Image, string, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, "", err
	}
	var seen []string
	for _, m := range im.Manifests {
		p := m.Platform
		if p == nil {
			continue
		}
		if p.OS == wantOS && p.Architecture == wantArch && m.MediaType.IsImage() {
			img, err := idx.Image(m.Digest)
			return img, m.Digest.String(), err
		}
		if p.OS != "unknown" { // attestation manifests
			s := p.OS + "/" + p.Architecture
			if p.Variant != "" {
				s += "/" + p.Variant
			}
			seen = append(seen, s)
		}
	}
	return nil, "", errPlatform(ref, seen)
}

func resolveLayout(ref Ref) (v1.Image, string, error) {
	p, err := layout.FromPath(ref.path)
	if err != nil {
		return nil, "", errdefs.Wrap(err, errdefs.ErrNotFound, errdefs.CodeEnvironmentMissing,
			"%s is not an OCI image layout directory (it needs index.json and oci-layout)", ref.path)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, "", err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, "", err
	}
	var pick *v1.Descriptor
	var tags []string
	for i, m := range im.Manifests {
		tag := m.Annotations["org.opencontainers.image.ref.name"]
		if tag != "" {
			tags = append(tags, tag)
		}
		if (ref.tag != "" && (tag == ref.tag || strings.HasSuffix(tag, ":"+ref.tag))) || (ref.tag == "" && len(im.Manifests) == 1) {
			pick = &im.Manifests[i]
			break
		}
	}
	if pick == nil {
		what := "has several images: add :TAG"
		if ref.tag != "" {
			what = "has no image tagged " + ref.tag
		}
		return nil, "", errdefs.New(errdefs.ErrNotFound, errdefs.CodeEnvironmentMissing,
			"OCI layout %s %s (tags: %s)", ref.path, what, strings.Join(orNone(tags), ", "))
	}
	if pick.MediaType.IsIndex() {
		child, err := idx.ImageIndex(pick.Digest)
		if err != nil {
			return nil, "", err
		}
		return fromIndex(ref, child)
	}
	img, err := idx.Image(pick.Digest)
	return img, pick.Digest.String(), err
}

func resolveArchive(ref Ref) (v1.Image, string, error) {
	if _, err := os.Stat(ref.path); err != nil {
		return nil, "", errdefs.Wrap(err, errdefs.ErrNotFound, errdefs.CodeEnvironmentMissing,
			"docker archive %s cannot be read (make one with \"docker save IMAGE -o FILE.tar\")", ref.path)
	}
	img, err := tarball.ImageFromPath(ref.path, nil)
	if err != nil {
		return nil, "", corruptf(ref, "not a single-image docker save archive: %v", err)
	}
	d, err := img.ConfigName()
	if err != nil {
		return nil, "", err
	}
	return img, d.String(), nil
}

func orNone(s []string) []string {
	if len(s) == 0 {
		return []string{"none"}
	}
	return s
}

func errPlatform(ref Ref, seen []string) error {
	sort.Strings(seen)
	return errdefs.New(errdefs.ErrNotFound, errdefs.CodeImagePlatform,
		"%s has no %s image (it has: %s): pyro's guests are x86-64 Linux; pick a tag or image built for %s",
		ref.Name, Platform, strings.Join(orNone(seen), ", "), Platform)
}

func corruptf(ref Ref, format string, args ...any) error {
	return errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeImageCorrupt,
		"%s: %s", ref.Name, fmt.Sprintf(format, args...))
}

// plainHTTPError: a request over plain HTTP to a registry nobody named.
type plainHTTPError struct{ host string }

func (e *plainHTTPError) Error() string {
	return "plain HTTP to " + e.host + " refused"
}

// plainHTTPGuard refuses plain HTTP to any registry not named insecure.
// go-containerregistry itself speaks HTTP to loopback and private
// addresses; pyro only does when the user says so.
type plainHTTPGuard struct {
	base http.RoundTripper
	opts Options
}

func (g *plainHTTPGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" && !g.opts.insecure(r.URL.Host) {
		return nil, &plainHTTPError{host: r.URL.Host}
	}
	return g.base.RoundTrip(r)
}

// mapErr turns go-containerregistry and network errors into typed ones.
func mapErr(ctx context.Context, ref Ref, err error) error {
	var e *errdefs.Error
	if errors.As(err, &e) {
		return err
	}
	if ctx.Err() != nil {
		return errdefs.Wrap(ctx.Err(), errdefs.ErrCanceled, errdefs.CodeCanceled, "pulling %s canceled", ref.Name)
	}
	var ph *plainHTTPError
	if errors.As(err, &ph) || strings.Contains(err.Error(), "plain HTTP to ") {
		host := ref.Registry
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeImagePull,
			"registry %s does not speak HTTPS; if it really is a plain-HTTP registry you trust, allow it with --insecure-registry %s or %s=%s",
			host, host, InsecureEnv, host)
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden:
			return errdefs.Wrap(err, errdefs.ErrFailedPrecondition, errdefs.CodeRegistryAuth,
				"registry %s refused access to %s: log in with \"docker login %s\" (pyro reads the Docker config: $DOCKER_CONFIG/config.json or ~/.docker/config.json)",
				ref.Registry, ref.Name, ref.Registry)
		case te.StatusCode == http.StatusNotFound:
			return errdefs.Wrap(err, errdefs.ErrNotFound, errdefs.CodeEnvironmentMissing,
				"%s was not found in its registry: check the name and tag", ref.Name)
		}
	}
	if strings.Contains(err.Error(), "sha256 checksum") || strings.Contains(err.Error(), "digest") && strings.Contains(err.Error(), "mismatch") {
		return errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeImageCorrupt,
			"%s: content does not match its digest (a broken registry or mirror, or tampering); nothing was installed", ref.Name)
	}
	var ne net.Error
	class := errdefs.ErrInternal
	if errors.As(err, &ne) || errors.Is(err, errUnexpectedEOF) {
		class = errdefs.ErrUnavailable
	}
	return errdefs.Wrap(err, class, errdefs.CodeImagePull,
		"pulling %s failed (nothing was installed; pulling again resumes from the layers already fetched)", ref.Name)
}
