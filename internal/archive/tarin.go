package archive

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
)

// Reading tar input (a seed file, or an export from the guest): sniffing,
// entry type checks, error typing.

// checkType refuses every entry type but regular files, directories,
// symlinks and hard links, links without a target, and a root ("./") that is
// not a directory.
func checkType(h *tar.Header, name string) error {
	if name == "" && h.Typeflag != tar.TypeDir {
		return badArchive("entry %q names the archive root but is not a directory; recreate the archive from a directory", h.Name)
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir:
		return nil
	case tar.TypeSymlink, tar.TypeLink:
		if h.Linkname == "" || strings.IndexByte(h.Linkname, 0) >= 0 {
			return badArchive("link %q has an empty or invalid target; recreate the archive without it", h.Name)
		}
		return nil
	case tar.TypeChar, tar.TypeBlock:
		return badArchive("entry %q is a device node; recreate the archive without special files", h.Name)
	case tar.TypeFifo:
		return badArchive("entry %q is a fifo; recreate the archive without special files", h.Name)
	}
	return badArchive("entry %q has unsupported type %q; only regular files, directories, symlinks and hard links are accepted, recreate the archive without it",
		h.Name, string(h.Typeflag))
}

// inputErr types an error met while reading a tar stream.
func inputErr(stream *meter, err error, src string) error {
	if stream.err != nil {
		return stream.err
	}
	if typed(err) {
		return err
	}
	return wrapBadArchive(err, "%s is not a valid tar archive (corrupt or truncated); recreate it", src)
}

var errNotTar = errors.New("not a tar stream")

// tarInput is a sniffed tar stream: read r; m meters the decompressed bytes
// under r and holds the typed error when it stopped them.
type tarInput struct {
	r  io.Reader
	m  *meter
	gz bool
}

// openTar sniffs r: gzip is recognised by its magic bytes and decompressed,
// then the first block must be a tar header (valid checksum) or zeros (an
// empty archive); anything else yields errNotTar.
func openTar(ctx context.Context, r io.Reader, b *budget) (*tarInput, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(2)
	in := &tarInput{gz: len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b}
	var raw io.Reader = br
	if in.gz {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, wrapBadArchive(err, "the gzip header is corrupt; recreate the archive")
		}
		raw = zr
	}
	in.m = b.stream(ctx, raw)
	tbr := bufio.NewReaderSize(in.m, 64<<10)
	in.r = tbr
	block, err := tbr.Peek(512)
	if in.m.err != nil {
		return nil, in.m.err
	}
	if err != nil && in.gz && !errors.Is(err, io.EOF) {
		return nil, wrapBadArchive(err, "the gzip data is corrupt; recreate the archive")
	}
	if len(block) < 512 || !isTarHeader(block) {
		return nil, errNotTar
	}
	return in, nil
}

// isTarHeader reports whether block (512 bytes) is a tar header with a valid
// checksum, in any tar dialect (v7, ustar, GNU, PAX), or all zeros (the end
// marker of an empty archive).
func isTarHeader(block []byte) bool {
	if len(block) != 512 {
		return false
	}
	zero := true
	for _, c := range block {
		if c != 0 {
			zero = false
			break
		}
	}
	if zero {
		return true
	}
	field := strings.Trim(string(block[148:156]), " \x00")
	want, err := strconv.ParseInt(field, 8, 64)
	if err != nil || field == "" {
		return false
	}
	var unsigned, signed int64
	for i, c := range block {
		if i >= 148 && i < 156 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	return want == unsigned || want == signed
}
