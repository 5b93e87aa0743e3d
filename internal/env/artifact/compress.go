package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

// Compress writes src zstd-compressed to dst (created, must not exist),
// hashing both sides, and reports the uncompressed bytes read.
func Compress(ctx context.Context, src, dst, mediaType, title string, progress func(done, total int64)) (Blob, error) {
	in, err := os.Open(src)
	if err != nil {
		return Blob{}, err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return Blob{}, err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return Blob{}, err
	}
	defer out.Close()
	hc, hu := sha256.New(), sha256.New()
	cw := &countWriter{w: io.MultiWriter(out, hc)}
	zw, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(min(2, runtime.NumCPU())))
	if err != nil {
		return Blob{}, err
	}
	if err := copyCtx(ctx, io.MultiWriter(zw, hu), in, func(n int64) {
		if progress != nil {
			progress(n, st.Size())
		}
	}); err != nil {
		zw.Close()
		return Blob{}, err
	}
	if err := zw.Close(); err != nil {
		return Blob{}, err
	}
	if err := out.Close(); err != nil {
		return Blob{}, err
	}
	return Blob{Path: dst, MediaType: mediaType, Title: title, Digest: sum(hc), Size: cw.n, DiffID: sum(hu)}, nil
}

func sum(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// copyCtx copies in 1 MiB steps, stopping when ctx ends, and reports the
// running total after each step.
func copyCtx(ctx context.Context, w io.Writer, r io.Reader, progress func(int64)) error {
	buf := make([]byte, 1<<20)
	var done int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			done += int64(n)
			progress(done)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// sparseFile writes a stream to a new file, leaving 4 KiB blocks that are
// all zero as holes; Close sets the final size.
type sparseFile struct {
	f   *os.File
	off int64
}

const holeBlock = 4096

var zeroBlock = make([]byte, holeBlock)

func (s *sparseFile) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		// Up to the next block boundary, so holes stay block-aligned.
		n := holeBlock - int(s.off%holeBlock)
		if n > len(p) {
			n = len(p)
		}
		chunk := p[:n]
		if !isZero(chunk) {
			// Coalesce the following non-zero blocks into one write.
			for n < len(p) {
				m := min(holeBlock, len(p)-n)
				if isZero(p[n : n+m]) {
					break
				}
				n += m
			}
			chunk = p[:n]
			if _, err := s.f.WriteAt(chunk, s.off); err != nil {
				return written, err
			}
		}
		s.off += int64(n)
		written += n
		p = p[n:]
	}
	return written, nil
}

func isZero(b []byte) bool {
	for len(b) >= holeBlock {
		if string(b[:holeBlock]) != string(zeroBlock) {
			return false
		}
		b = b[holeBlock:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// finish gives the file its full length (trailing holes) and flushes it.
func (s *sparseFile) finish() error {
	if err := s.f.Truncate(s.off); err != nil {
		return fmt.Errorf("sizing %s: %w", s.f.Name(), err)
	}
	return s.f.Sync()
}
