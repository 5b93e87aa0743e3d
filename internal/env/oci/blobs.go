package oci

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
)

var errUnexpectedEOF = io.ErrUnexpectedEOF

// Blobs is a digest-addressed store of layer blobs: <Dir>/sha256/<hex>.
// A blob appears by rename once its bytes hashed to its name, so a blob
// present is always whole and right; images share layers through it.
type Blobs struct{ Dir string }

// Path is where a blob with that digest lives (it may not exist).
func (b Blobs) Path(digest string) (string, error) {
	hexd, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexd) != 64 || strings.Trim(hexd, "0123456789abcdef") != "" {
		return "", fmt.Errorf("unsupported digest %q", digest)
	}
	return filepath.Join(b.Dir, "sha256", hexd), nil
}

// Has reports whether the blob is stored (with the expected size, when known).
func (b Blobs) Has(l Layer) bool {
	p, err := b.Path(l.Digest)
	if err != nil {
		return false
	}
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && (l.Size < 0 || st.Size() == l.Size)
}

// Fetch stores layer l unless it is already there, reporting bytes copied
// through progress (may be nil). The bytes are hashed on the way and the
// blob only appears when they match l.Digest.
func (b Blobs) Fetch(ctx context.Context, im *Image, l Layer, progress func(done int64)) (string, error) {
	p, err := b.Path(l.Digest)
	if err != nil {
		return "", corruptf(im.Ref, "layer %s", err)
	}
	if b.Has(l) {
		return p, nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	var rc io.ReadCloser
	if l.uncompressed {
		rc, err = l.layer.Uncompressed()
	} else {
		rc, err = l.layer.Compressed()
	}
	if err != nil {
		return "", mapErr(ctx, im.Ref, err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	h := sha256.New()
	w := io.MultiWriter(tmp, h)
	buf := make([]byte, 1<<20)
	var done int64
	for {
		if err := ctx.Err(); err != nil {
			tmp.Close()
			return "", mapErr(ctx, im.Ref, err)
		}
		n, rerr := rc.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				tmp.Close()
				return "", err
			}
			done += int64(n)
			if progress != nil {
				progress(done)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			tmp.Close()
			return "", mapErr(ctx, im.Ref, rerr)
		}
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != l.Digest {
		tmp.Close()
		return "", errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeImageCorrupt,
			"%s: layer %s arrived with digest %s: the registry sent the wrong bytes (or they were tampered with); nothing was installed",
			im.Ref.Name, l.Digest, got)
	}
	if l.Size >= 0 && done != l.Size {
		tmp.Close()
		return "", corruptf(im.Ref, "layer %s is %d bytes, its manifest says %d", l.Digest, done, l.Size)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := fsutil.SyncFile(tmp.Name()); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", err
	}
	return p, nil
}

// Uncompressed opens a stored blob as a tar stream, whatever its
// compression (gzip, zstd or none), sniffed from its first bytes.
func Uncompressed(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, err
		}
		return readCloser{zr, func() error { zr.Close(); return f.Close() }}, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			f.Close()
			return nil, err
		}
		return readCloser{zr, func() error { zr.Close(); return f.Close() }}, nil
	}
	return readCloser{br, f.Close}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }
