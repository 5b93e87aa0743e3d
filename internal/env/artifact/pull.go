package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// Artifact is a pyro environment found in a registry: its manifest digest,
// its verified config (pyro's manifest) and its two layers, not yet fetched.
type Artifact struct {
	Digest      string
	Annotations map[string]string // of the manifest
	Config      []byte
	Kernel      v1.Descriptor
	Rootfs      v1.Descriptor

	repo name.Repository
	opts []remote.Option
}

// ErrCorrupt marks content that does not match what the artifact says.
var ErrCorrupt = errors.New("artifact content does not match its manifest")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// Get reads the manifest ref names. It returns nil, nil when that is not a
// pyro environment (an ordinary image or an index): the caller treats it
// as an image.
func Get(ref name.Reference, opts ...remote.Option) (*Artifact, error) {
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, err
	}
	if desc.MediaType != types.OCIManifestSchema1 {
		return nil, nil
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, corrupt("manifest: %v", err)
	}
	if m.ArtifactType != ArtifactType && m.Config.MediaType != ConfigMediaType {
		return nil, nil
	}
	a := &Artifact{Digest: desc.Digest.String(), Annotations: m.Annotations, repo: ref.Context(), opts: opts}
	var kernels, roots int
	for _, l := range m.Layers {
		switch l.MediaType {
		case KernelMediaType:
			a.Kernel, kernels = l, kernels+1
		case RootfsMediaType:
			a.Rootfs, roots = l, roots+1
		}
	}
	if kernels != 1 || roots != 1 || m.Config.MediaType != ConfigMediaType {
		return nil, corrupt("a pyro environment has one %s config, one %s and one %s layer", ConfigMediaType, KernelMediaType, RootfsMediaType)
	}
	if m.Config.Size <= 0 || m.Config.Size > maxConfigSize {
		return nil, corrupt("config of %d bytes", m.Config.Size)
	}
	rc, err := a.open(m.Config)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if a.Config, err = io.ReadAll(io.LimitReader(rc, m.Config.Size+1)); err != nil {
		return nil, err
	}
	if s := sha256.Sum256(a.Config); int64(len(a.Config)) != m.Config.Size || fmt.Sprintf("%x", s) != m.Config.Digest.Hex {
		return nil, corrupt("config blob does not match its digest %s", m.Config.Digest)
	}
	return a, nil
}

func (a *Artifact) open(d v1.Descriptor) (io.ReadCloser, error) {
	if d.Digest.Algorithm != "sha256" {
		return nil, corrupt("unsupported digest %s", d.Digest)
	}
	l, err := remote.Layer(a.repo.Digest(d.Digest.String()), a.opts...)
	if err != nil {
		return nil, err
	}
	return l.Compressed()
}

// Want is what the uncompressed bytes of a layer must be.
type Want struct {
	SHA256 string // hex
	Size   int64
}

// Extract fetches layer d into dst (created, must not exist), decompressed
// and sparse, checking the compressed bytes against d and the result
// against want. progress sees the compressed bytes fetched.
func (a *Artifact) Extract(ctx context.Context, d v1.Descriptor, dst string, want Want, progress func(done, total int64)) error {
	rc, err := a.open(d)
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	hc := sha256.New()
	fetched := &countWriter{w: hc}
	var tee io.Reader = io.TeeReader(rc, fetched)
	tee = &progressReader{r: tee, ctx: ctx, fn: func() {
		if progress != nil {
			progress(fetched.n, d.Size)
		}
	}}
	zr, err := zstd.NewReader(tee, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<27))
	if err != nil {
		return err
	}
	defer zr.Close()
	hu := sha256.New()
	sf := &sparseFile{f: out}
	if err := copyCtx(ctx, io.MultiWriter(sf, hu), io.LimitReader(zr, want.Size+1), func(int64) {}); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, zstd.ErrMagicMismatch) || errors.Is(err, zstd.ErrReservedBlockType) || errors.Is(err, zstd.ErrCRCMismatch) {
			return corrupt("layer %s does not decompress: %v", d.Digest, err)
		}
		return err
	}
	// Drain what zstd did not need, so the whole blob is hashed.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return err
	}
	switch {
	case sum(hc) != d.Digest || fetched.n != d.Size:
		return corrupt("layer %s arrived as %d bytes with digest %s", d.Digest, fetched.n, sum(hc))
	case sf.off != want.Size || sum(hu).Hex != want.SHA256:
		return corrupt("layer %s unpacks to %d bytes with sha256 %s, its config says %d bytes with sha256 %s",
			d.Digest, sf.off, sum(hu).Hex, want.Size, want.SHA256)
	}
	if err := sf.finish(); err != nil {
		return err
	}
	return out.Close()
}

// progressReader checks ctx and reports after each read.
type progressReader struct {
	r   io.Reader
	ctx context.Context
	fn  func()
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	p.fn()
	return n, err
}

// Push writes img to ref, reporting the bytes uploaded.
func Push(ref name.Reference, img v1.Image, progress func(done, total int64), opts ...remote.Option) error {
	ch := make(chan v1.Update, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for u := range ch {
			if progress != nil && u.Total > 0 {
				progress(u.Complete, u.Total)
			}
		}
	}()
	err := remote.Write(ref, img, append(opts, remote.WithProgress(ch))...)
	<-done
	return err
}
